"""Running a study: workers, trials, the shared budget, recovery of dead trials, progress."""

"""Benchmarks of training speed and of the search; imported by the command line only."""

"""HTML reports, paper tables and dashboard figures from stored Optuna studies (nothing here trains)."""

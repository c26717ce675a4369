"""Training: configs and callbacks in, one result per member per epoch out; knows nothing of Optuna or storage."""

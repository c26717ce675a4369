"""Hyperparameter search and ablation studies for CIFAR-10/100 image classifiers."""

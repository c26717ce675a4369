"""Commands built on stored studies: scoring on the test set, the ablation path."""

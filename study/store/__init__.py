"""What a study stores and where: the stored format (record.py, with its fixed values in vocabulary.py,
trial-state groups in states.py and the workers' system attributes in owners.py), storages and their
folders (storage.py opens them), and the one module that touches Optuna's private API (optuna_internals.py)."""

"""Space files: loading one, and the kinds of study it describes (search, ablation, comparison)."""

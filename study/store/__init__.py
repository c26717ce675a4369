"""What a study stores and where: the stored format (record.py), storages and their folders."""

"""The folders beside a study's storage: artifacts and checkpoints, and a new SQLite file removed
again when the run that created it stored nothing."""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path
from typing import Iterator

import optuna

from study.store.urls import sqlite_path


def run_dir(url: str) -> Path:
    """Where artifacts and checkpoints go: beside an SQLite file, else ./runs."""
    path = sqlite_path(url)
    return path.parent if path is not None else Path("runs")


def checkpoint_dir(url: str, uid: str) -> Path:
    """A study's own checkpoint folder, named by its uid: another study (a new database in the same
    folder, or this one deleted and recreated) never picks up its checkpoints."""
    return run_dir(url) / "checkpoints" / uid


def artifact_store(url: str, create: bool = True) -> optuna.artifacts.FileSystemArtifactStore | None:
    """The artifact store beside the storage (None when it is missing and not to be created)."""
    folder = run_dir(url) / "artifacts"
    if create:
        folder.mkdir(parents=True, exist_ok=True)
    return optuna.artifacts.FileSystemArtifactStore(str(folder)) if folder.is_dir() else None


@contextlib.contextmanager
def removed_unless_used(url: str, default: bool) -> Iterator[None]:
    """An SQLite file this run creates is deleted again when the run fails before it stored anything
    (with the default runs/ folder, when that was new too)."""
    path = sqlite_path(url)
    new = path is not None and not path.exists()
    folder_new = default and path is not None and not path.parent.exists()
    try:
        yield
    except BaseException:
        if new:
            for leftover in (path, *(path.with_name(path.name + s) for s in ("-wal", "-shm", "-journal"))):
                leftover.unlink(missing_ok=True)
            if folder_new:
                shutil.rmtree(path.parent, ignore_errors=True)
        raise

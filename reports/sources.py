"""Open the storages named on the command line and pick their studies.

An argument is a `.db` path, an SQLAlchemy URL, or a journal file. The artifact store is looked for
where `study run` puts it: `artifacts/` beside the database (or journal) file, `runs/artifacts`
for a server URL.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import optuna
from optuna.artifacts import FileSystemArtifactStore

from study.errors import UserError

SQLITE_MAGIC = b"SQLite format 3\x00"


@dataclass(frozen=True)
class Source:
    """One storage as given by the user, and where its artifacts are."""

    label: str
    url: str  # what optuna-dashboard and load_study accept (the journal's path for journal files)
    storage: optuna.storages.BaseStorage
    artifacts: FileSystemArtifactStore | None


@dataclass(frozen=True)
class Loaded:
    """A study and the storage it came from."""

    study: optuna.Study
    source: Source


def _artifact_store(folder: Path) -> FileSystemArtifactStore | None:
    folder = folder / "artifacts"
    return FileSystemArtifactStore(str(folder)) if folder.is_dir() else None


def open_source(text: str) -> Source:
    """The storage behind one command-line argument; a missing file or bad URL is a UserError."""
    if "://" in text:
        db = Path(text.removeprefix("sqlite:///").partition("?")[0]) if text.startswith("sqlite:///") else None
        if db is not None and not db.is_file():
            raise UserError(f"{text}: no such database file; pass the .db file that `python -m study run` wrote")
        return Source(text, text, _rdb(_readable(db, text) if db else text), _artifact_store(db.parent if db else Path("runs")))
    path = Path(text)
    if not path.is_file():
        raise UserError(f"{text}: no such file; pass a study database (.db), a journal file or a storage URL")
    with path.open("rb") as f:
        is_sqlite = f.read(len(SQLITE_MAGIC)) == SQLITE_MAGIC
    if is_sqlite:
        url = f"sqlite:///{path.resolve()}"
        return Source(text, url, _rdb(_readable(path, url)), _artifact_store(path.parent))
    try:
        storage = optuna.storages.journal.JournalStorage(optuna.storages.journal.JournalFileBackend(str(path)))
    except Exception as exc:
        raise UserError(f"{text} is neither an SQLite database nor an Optuna journal file ({type(exc).__name__}: {exc})") from None
    return Source(text, str(path), storage, _artifact_store(path.parent))


def _readable(path: Path, url: str) -> str:
    """`url`, or where the database or its folder cannot be written (a read-only mount, a copy
    without permissions), a URL that reads it without writing: SQLite in WAL mode would otherwise
    fail creating its -shm file. A URL that asks for read-only (`?mode=ro`) gets it too."""
    if "mode=ro" not in url and os.access(path, os.W_OK) and os.access(path.parent, os.W_OK):
        return url
    # SQLite reads a WAL database read-only when its -wal (and -shm) files are there already;
    # without them, all is in the main file, and `immutable` reads it without creating them
    mode = "mode=ro" if path.with_name(path.name + "-wal").exists() else "immutable=1"
    return f"sqlite:///file:{path.resolve()}?{mode}&uri=true"


def _rdb(url: str) -> optuna.storages.RDBStorage:
    try:
        # a report only reads: a database of another Optuna version is fine, and no tables are created
        return optuna.storages.RDBStorage(url, skip_compatibility_check=True, skip_table_creation=True)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise UserError(f"cannot open storage {url!r} ({type(exc).__name__}: {first}); check the path or URL: it must be a study database written by `python -m study run`") from None


def load(arguments: list[str], names: list[str] | None = None) -> list[Loaded]:
    """Every study of the given storages, or only those named in `names` (each must exist somewhere)."""
    if not arguments:
        raise UserError("no storage given: pass one or more study databases, e.g. runs/naivenet128.db")
    found: list[Loaded] = []
    available: list[str] = []
    for text in arguments:
        source = open_source(text)
        try:
            stored = optuna.get_all_study_names(source.storage)
        except Exception as exc:
            raise UserError(f"{text} holds no Optuna studies ({type(exc).__name__}); pass a database written by `python -m study run`") from None
        for name in stored:
            available.append(name)
            if not names or name in names:
                found.append(Loaded(optuna.load_study(study_name=name, storage=source.storage), source))
    missing = sorted(set(names or []) - {item.study.study_name for item in found})
    if missing:
        raise UserError(f"--study {', '.join(missing)}: not found; the storages hold: {', '.join(available) or 'no studies'}")
    if not found:
        raise UserError(f"{', '.join(arguments)} hold no studies; run `python -m study run` first")
    return found

"""Open the storages named on the command line and pick their studies.

An argument is a `.db` path, an SQLAlchemy URL, or a journal file. The artifact store is looked for
where `study run` puts it: `artifacts/` beside the database (or journal) file, `runs/artifacts`
for a server URL.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import optuna
from optuna.artifacts import FileSystemArtifactStore

from study.errors import UserError
from study.store import checks, storage, urls
from study.store.folders import artifact_store

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


def open_source(text: str) -> Source:
    """The storage behind one command-line argument; a missing file or bad URL is a UserError."""
    if "://" in text:
        return Source(text, text, storage.open_to_read(text), artifact_store(text, create=False))
    path = Path(text)
    if not path.is_file():
        raise UserError(f"{text}: no such file; pass a study database (.db), a journal file or a storage URL")
    with path.open("rb") as f:
        is_sqlite = f.read(len(SQLITE_MAGIC)) == SQLITE_MAGIC
    url = urls.url(str(path.resolve()))
    if is_sqlite:
        return Source(text, url, storage.open_to_read(url), artifact_store(url, create=False))
    try:
        journal = optuna.storages.journal.JournalStorage(optuna.storages.journal.JournalFileBackend(str(path)))
    except Exception as exc:
        raise UserError(f"{text} is neither an SQLite database nor an Optuna journal file "
                        f"({type(exc).__name__}: {exc})") from None
    # a journal's artifacts are beside it, where they would be for a database file of that name
    return Source(text, str(path), journal, artifact_store(url, create=False))


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
            raise UserError(f"{text} holds no Optuna studies ({type(exc).__name__}); "
                            "pass a database written by `python -m study run`") from None
        for name in stored:
            available.append(name)
            if not names or name in names:
                study = optuna.load_study(study_name=name, storage=source.storage)
                checks.check_ours(study, text, "pick the others with --study NAME")
                found.append(Loaded(study, source))
    missing = sorted(set(names or []) - {item.study.study_name for item in found})
    if missing:
        raise UserError(f"--study {', '.join(missing)}: not found; the storages hold: {', '.join(available) or 'no studies'}")
    if not found:
        raise UserError(f"{', '.join(arguments)} hold no studies; run `python -m study run` first")
    return found

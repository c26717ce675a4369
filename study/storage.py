"""Where a study is stored and how it is opened: URLs, SQLite files made safe for several processes,
server databases whose schema several machines may create at once, the artifact and checkpoint
folders beside them, and every bad storage said in one line. `reports/` opens storages through here too.

- SQLite is opened in WAL mode with a 60 s busy timeout and immediate transactions, so several
  workers and optuna-dashboard read and write one file without "database is locked" errors or two
  workers taking one queued trial; any SQLAlchemy URL (PostgreSQL, MySQL) works the same way for
  several machines.
- Every RDB storage runs Optuna's heartbeat for trials owned by other machines (study/recovery.py).
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import sqlite3
import time
from pathlib import Path
from typing import Any, Iterator

import optuna
from optuna.storages import RetryHeartbeatStaleTrialCallback

from study.errors import UserError, one_line

HEARTBEAT_SECONDS = 10
HEARTBEAT_GRACE_SECONDS = 30
MAX_RETRY = 2
SCHEMA_TRIES = 5  # first starts of several machines on an empty server database
# Optuna's schema stores a study name as VARCHAR(512): PostgreSQL and MySQL refuse longer ones, SQLite
# would take them, so the limit holds for every storage and a study moves between them
MAX_STUDY_NAME = 512


def check_study_name(name: str) -> None:
    """A study name every storage can hold (the names of derived studies included)."""
    if len(name) > MAX_STUDY_NAME:
        raise UserError(f"study name {name[:40]}... is {len(name)} characters: a study name holds at most "
                        f"{MAX_STUDY_NAME}; pass a shorter --study-name")


def _chain(exc: BaseException) -> list[BaseException]:
    out = [exc]
    while (nxt := out[-1].__cause__ or out[-1].__context__) is not None and nxt not in out:
        out.append(nxt)
    return out


@contextlib.contextmanager
def one_line_failures(url: str) -> Iterator[None]:
    """A trial's environment failure (a UserError, however deep in Optuna's chain), or a storage that
    cannot be written (a full disk), as one line; the next run re-queues what it left unfinished."""
    try:
        yield
    except UserError:
        raise
    except Exception as exc:
        chain = _chain(exc)
        reason = next((e for e in chain if isinstance(e, UserError)), None)
        if reason is not None:
            raise reason from None
        import sqlalchemy

        if not any(isinstance(e, (sqlalchemy.exc.OperationalError, optuna.exceptions.StorageInternalError, OSError))
                   for e in chain):
            raise
        raise UserError(f"the storage {url} could not be written ({one_line(chain[-1])}); free disk space or fix "
                        "the database, then run the same command to resume") from None


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # SQLAlchemy's "begin" event below opens transactions instead
    dbapi_connection.execute("PRAGMA journal_mode=WAL")


def _sqlite_begin(connection: Any) -> None:
    # IMMEDIATE takes the write lock up front, so Optuna's read-then-write steps (popping a queued
    # trial) are atomic across processes; with deferred transactions two workers could both take
    # the same WAITING trial. Readers (optuna-dashboard) are not blocked in WAL mode.
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def _create_sqlite_whole(path: Path) -> None:
    """Create a new SQLite study database beside `path` and move it in complete.

    Optuna creates its schema table by table, so a process opening the file meanwhile (a worker,
    optuna-dashboard) finds some tables missing, creates them too and fails with "table ... already
    exists". A hard link appears atomically and refuses to replace a file another process put there
    first, whose schema is then complete as well.
    """
    if path.exists():
        return
    scratch = path.with_name(f".{path.name}.{os.getpid()}.new")
    try:
        optuna.storages.RDBStorage(f"sqlite:///{scratch}").engine.dispose()
        os.link(scratch, path)
    except OSError:
        # FileExistsError: another process linked its complete file first. Otherwise (no hard
        # links on this file system) Optuna creates the file in place below, as it always did.
        pass
    finally:
        scratch.unlink(missing_ok=True)


def sqlite_path(url: str) -> Path | None:
    """The file behind an SQLite URL (None for other databases)."""
    if not url.startswith("sqlite:"):
        return None
    return Path(url.removeprefix("sqlite:").removeprefix("///").partition("?")[0] or ":memory:")


def default_url(space_name: str) -> str:
    return f"sqlite:///runs/{space_name}.db"


def url(text: str) -> str:
    """A bare path to a .db file means SQLite; anything with :// is an SQLAlchemy URL."""
    return text if "://" in text else f"sqlite:///{text}"


def existing_url(text: str) -> str:
    """The URL of a study storage that must already exist (commands that read a finished study)."""
    found = url(text)
    path = sqlite_path(found)
    if path is not None and not path.is_file():
        raise UserError(f"{text} does not exist; pass the .db file that `python -m study run` wrote")
    return found


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


def _check_sqlite(url: str, path: Path, create_folder: bool) -> None:
    """What SQLite or Optuna would do silently, or as a long traceback, said in one line."""
    query = url.partition("?")[2]
    if path.name == ":memory:" or "mode=memory" in query:
        raise UserError(f"{url} is an in-memory database: it vanishes with the process, so nothing could resume "
                        "or share it; pass a file, e.g. --storage sqlite:///runs/study.db")
    if "mode=ro" in query or "immutable=1" in query:
        raise UserError(f"{url} opens the database read-only, but run stores trials; drop the query, or use "
                        "`python -m study report` to read it")
    if path.exists() and not path.is_file():  # /dev/null, a folder: SQLite would write a journal beside it
        raise UserError(f"{path} is not a regular file ({'a folder' if path.is_dir() else 'a device or pipe'}); "
                        "pass a study database file, e.g. --storage sqlite:///runs/study.db")
    folder = path.parent
    if create_folder:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(f"cannot create {folder} for the study database ({exc.strerror}); pass --storage") from None
    elif not folder.is_dir():
        raise UserError(f"folder {folder} of {url} does not exist; create it first or pass another --storage")
    if not os.access(folder, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise UserError(f"{path if path.exists() else folder} is read-only: run stores trials there; copy the "
                        "database somewhere writable, or read it with `python -m study report`")
    if path.is_file() and path.stat().st_size:
        _check_optuna_file(path)


def _check_optuna_file(path: Path) -> None:
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError as exc:
        raise UserError(f"{path} is not an SQLite database ({exc}); pass a study database or a new file name") from None
    if not {"studies", "trials", "version_info"} <= tables:
        shown = ", ".join(sorted(tables)[:5]) or "none"
        raise UserError(f"{path} is an SQLite database but not an Optuna storage (its tables: {shown}); "
                        "pass a study database or a new file name")


def _rdb_storage(url: str, **kwargs: Any) -> optuna.storages.RDBStorage:
    """Optuna's RDBStorage, retried while another process creates the same schema on a server database.

    Two first starts at once on an empty PostgreSQL database both run CREATE TABLE / CREATE TYPE,
    and all but one fail (IntegrityError on pg_type_typname_nsp_index); a second try finds the
    tables there. SQLite files get their schema whole instead (_create_sqlite_whole).
    """
    import sqlalchemy

    for _ in range(SCHEMA_TRIES - 1):
        try:
            return optuna.storages.RDBStorage(url, **kwargs)
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError):
            time.sleep(0.2 + random.random())  # apart, so that the retries do not collide again
    return optuna.storages.RDBStorage(url, **kwargs)


def open_storage(url: str, heartbeat: bool = True, create_folder: bool = True) -> optuna.storages.RDBStorage:
    """An Optuna RDB storage (with heartbeats for `optimize`); SQLite in WAL mode waits for locks.

    An SQLite file's folder is created only with `create_folder` (the default runs/): an explicit
    path in a missing folder is more likely a typo than a wish.
    """
    if "://" not in url:
        raise UserError(f"storage {url!r} is not a URL; write sqlite:///path/to.db or postgresql://user@host/db")
    path = sqlite_path(url)
    if path is not None:
        _check_sqlite(url, path, create_folder)
    try:
        if path is not None and "?" not in url:
            _create_sqlite_whole(path)
        beats = dict(
            heartbeat_interval=HEARTBEAT_SECONDS, grace_period=HEARTBEAT_GRACE_SECONDS,
            heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(MAX_RETRY, inherit_intermediate_values=True),
        )
        storage = _rdb_storage(url, engine_kwargs={"connect_args": {"timeout": 60}} if path else {},
                               **(beats if heartbeat else {}))
    except Exception as exc:
        raise UserError(f"cannot open storage {url!r} ({one_line(exc)}); check the URL and that the database "
                        "is reachable") from None
    if path is not None:
        import sqlalchemy

        sqlalchemy.event.listen(storage.engine, "connect", _sqlite_connect)
        sqlalchemy.event.listen(storage.engine, "begin", _sqlite_begin)
        storage.engine.dispose()  # reconnect so the pragma applies to every pooled connection
    return storage


def open_to_read(url: str) -> optuna.storages.RDBStorage:
    """A storage that is only read (reports): a database of another Optuna version is fine, no tables
    are created, and a file on a read-only mount is read without writing."""
    path = sqlite_path(url)
    if path is not None:
        if not path.is_file():
            raise UserError(f"{url}: no such database file; pass the .db file that `python -m study run` wrote")
        url = _readable(path, url)
    try:
        return optuna.storages.RDBStorage(url, skip_compatibility_check=True, skip_table_creation=True)
    except Exception as exc:
        raise UserError(f"cannot open storage {url!r} ({one_line(exc)}); check the path or URL: it must be a "
                        "study database written by `python -m study run`") from None


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

"""SQLite study files made safe for several processes, and what is wrong with one said in one line.

SQLite is opened in WAL mode with a 60 s busy timeout and immediate transactions, so several workers
and optuna-dashboard read and write one file without "database is locked" errors or two workers
taking one queued trial.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from pathlib import Path
from typing import Any

import optuna

from study.errors import UserError


def connect(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # SQLAlchemy's "begin" event below opens transactions instead
    dbapi_connection.execute("PRAGMA journal_mode=WAL")


def begin(connection: Any) -> None:
    # IMMEDIATE takes the write lock up front, so Optuna's read-then-write steps (popping a queued
    # trial) are atomic across processes; with deferred transactions two workers could both take
    # the same WAITING trial. Readers (optuna-dashboard) are not blocked in WAL mode.
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def listen(storage: optuna.storages.RDBStorage) -> None:
    """WAL mode and immediate transactions on every connection of `storage`'s pool."""
    import sqlalchemy

    sqlalchemy.event.listen(storage.engine, "connect", connect)
    sqlalchemy.event.listen(storage.engine, "begin", begin)
    storage.engine.dispose()  # reconnect so the pragma applies to every pooled connection


def create_whole(path: Path) -> None:
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


def check(url: str, path: Path, create_folder: bool) -> None:
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


def readable(path: Path, url: str) -> str:
    """`url`, or where the database or its folder cannot be written (a read-only mount, a copy
    without permissions), a URL that reads it without writing: SQLite in WAL mode would otherwise
    fail creating its -shm file. A URL that asks for read-only (`?mode=ro`) gets it too."""
    if "mode=ro" not in url and os.access(path, os.W_OK) and os.access(path.parent, os.W_OK):
        return url
    # SQLite reads a WAL database read-only when its -wal (and -shm) files are there already;
    # without them, all is in the main file, and `immutable` reads it without creating them
    mode = "mode=ro" if path.with_name(path.name + "-wal").exists() else "immutable=1"
    return f"sqlite:///file:{path.resolve()}?{mode}&uri=true"

"""Where a study is stored and how it is opened; `reports/` opens storages through here too.

The jobs around opening live beside this module: storage URLs and study names (urls.py), SQLite files
made safe for several processes (sqlite.py), server storages retried through a restart (retry.py), the
gRPC storage proxy (proxy.py), heartbeats (heartbeat.py), the artifact and checkpoint folders
(folders.py). Any SQLAlchemy URL (PostgreSQL, MySQL) works for several machines; `grpc://host:port`
serves more workers than the database takes connections.
"""

from __future__ import annotations

import random
import time
from typing import Any

import optuna
from optuna.storages import RDBStorage

from study.errors import UserError, one_line
from study.store import heartbeat as beats
from study.store import sqlite
from study.store.proxy import grpc_storage
from study.store.retry import ServerStorage
from study.store.urls import GRPC, sqlite_path

SCHEMA_TRIES = 5  # first starts of several machines on an empty server database
# A worker's pool: its main thread and Optuna's heartbeat thread each hold one connection at most.
WORKER_CONNECTIONS = 2


def release(storage: optuna.storages.BaseStorage) -> None:
    """Close the database connections `storage` keeps in its pool (it reconnects if used again), so
    that a process holds connections only for the storage it works with."""
    if isinstance(storage, RDBStorage):
        storage.engine.dispose()


def _rdb_storage(url: str, **kwargs: Any) -> optuna.storages.RDBStorage:
    """Optuna's RDBStorage, retried while another process creates the same schema on a server database.

    Two first starts at once on an empty PostgreSQL database both run CREATE TABLE / CREATE TYPE,
    and all but one fail (IntegrityError on pg_type_typname_nsp_index); a second try finds the
    tables there. SQLite files get their schema whole instead (sqlite.create_whole).
    """
    import sqlalchemy

    cls = RDBStorage if url.startswith("sqlite:") else ServerStorage
    for _ in range(SCHEMA_TRIES - 1):
        try:
            return cls(url, **kwargs)
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError):
            time.sleep(0.2 + random.random())  # apart, so that the retries do not collide again
    return cls(url, **kwargs)


def open_storage(url: str, heartbeat: bool = True, create_folder: bool = True,
                 connections: int = WORKER_CONNECTIONS) -> optuna.storages.BaseStorage:
    """An Optuna storage (with heartbeats for `optimize`); SQLite in WAL mode waits for locks.

    An SQLite file's folder is created only with `create_folder` (the default runs/): an explicit
    path in a missing folder is more likely a typo than a wish. A database server gets at most
    `connections` connections from this process (pre-pinged, so a restarted server is reconnected).
    """
    if "://" not in url:
        raise UserError(f"storage {url!r} is not a URL; write sqlite:///path/to.db, postgresql://user@host/db "
                        "or grpc://host:port")
    if url.startswith(GRPC):
        return grpc_storage(url)
    path = sqlite_path(url)
    if path is not None:
        sqlite.check(url, path, create_folder)
    try:
        if path is not None and "?" not in url:
            sqlite.create_whole(path)
        server = {"pool_size": connections, "max_overflow": 0, "pool_pre_ping": True}
        storage = _rdb_storage(url, engine_kwargs={"connect_args": {"timeout": 60}} if path else server,
                               **(beats.rdb_arguments() if heartbeat else {}))
    except Exception as exc:
        raise UserError(f"cannot open storage {url!r} ({one_line(exc)}); check the URL and that the database "
                        "is reachable") from None
    if path is not None:
        sqlite.listen(storage)
    return storage


def open_to_read(url: str) -> optuna.storages.BaseStorage:
    """A storage that is only read (reports): a database of another Optuna version is fine, no tables
    are created, and a file on a read-only mount is read without writing."""
    if url.startswith(GRPC):
        return grpc_storage(url)
    path = sqlite_path(url)
    if path is not None:
        if not path.is_file():
            raise UserError(f"{url}: no such database file; pass the .db file that `python -m study run` wrote")
        url = sqlite.readable(path, url)
    try:
        return optuna.storages.RDBStorage(url, skip_compatibility_check=True, skip_table_creation=True)
    except Exception as exc:
        raise UserError(f"cannot open storage {url!r} ({one_line(exc)}); check the path or URL: it must be a "
                        "study database written by `python -m study run`") from None

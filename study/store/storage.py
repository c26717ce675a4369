"""Where a study is stored and how it is opened: URLs, SQLite files made safe for several processes,
server databases whose schema several machines may create at once, the artifact and checkpoint
folders beside them, and every bad storage said in one line. `reports/` opens storages through here too.

- SQLite is opened in WAL mode with a 60 s busy timeout and immediate transactions, so several
  workers and optuna-dashboard read and write one file without "database is locked" errors or two
  workers taking one queued trial; any SQLAlchemy URL (PostgreSQL, MySQL) works the same way for
  several machines.
- `grpc://host:port` reaches a database through Optuna's gRPC storage proxy (`python -m study
  storage-proxy`, `serve_proxy`), for more workers than the database takes connections. The proxy
  has no heartbeat call, so `GrpcStorage` keeps Optuna's heartbeat protocol with the beat stored as
  a trial system attribute (record.HEARTBEAT), judged stale by how long it has not changed on the
  reader's own clock: hosts' clocks need not agree.
- Every storage that `run` opens runs Optuna's heartbeat for trials owned by other machines
  (study/search/recovery.py).
- A server storage (a database server, the proxy) that stops answering is retried for
  `retry_seconds()` (STUDY_STORAGE_RETRY_SECONDS, default RETRY_SECONDS), then the worker stops
  with one line (StorageLost) and its trial stays RUNNING, to be re-queued as a dead worker's.
"""

from __future__ import annotations

import contextlib
import functools
import os
import random
import shutil
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Iterator
from urllib.parse import urlsplit

import optuna
from optuna.storages import GrpcStorageProxy, RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.storages._heartbeat import BaseHeartbeat
from optuna.trial import TrialState

from study.errors import UserError, one_line
from study.store import record

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
GRPC = "grpc://"
RETRY_SECONDS = 120  # how long a worker waits for a lost database server or proxy before it stops
RETRY_SECONDS_ENV = "STUDY_STORAGE_RETRY_SECONDS"
PROXY_CONNECT_SECONDS = 10  # a grpc:// URL nobody answers at is a wrong address or a proxy not started
PROXY_THREADS = 10  # Optuna's default: requests served at once, so database connections the proxy holds
# A worker's pool: its main thread and Optuna's heartbeat thread each hold one connection at most.
WORKER_CONNECTIONS = 2


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


LOST = "lost the storage"


class StorageLost(UserError):
    """A server storage that did not answer for retry_seconds(): the worker stops, its trial recoverable."""


def retry_seconds() -> float:
    text = os.environ.get(RETRY_SECONDS_ENV, "")
    try:
        return float(text) if text else RETRY_SECONDS
    except ValueError:
        raise UserError(f"{RETRY_SECONDS_ENV}={text!r} is invalid: it must be a number of seconds") from None


def _disconnected(exc: BaseException) -> bool:
    """Whether `exc` says the server could not be reached (not that the request was wrong)."""
    import sqlalchemy

    for e in _chain(exc):
        if isinstance(e, sqlalchemy.exc.OperationalError):  # psycopg: refused, closed, server restarting
            return True
        if type(e).__module__.startswith("grpc") and callable(getattr(e, "code", None)):
            # UNAVAILABLE: the proxy is unreachable; UNKNOWN with LOST in it: the proxy's database is
            # (the proxy answers an error it raised with its text, study/store/storage.py on both ends)
            code, details = getattr(e.code(), "name", ""), str(e.details() or "")
            return code == "UNAVAILABLE" or (code == "UNKNOWN" and LOST in details)
    return False


_depth = threading.local()  # an outer storage call retries; calls it makes inside do not retry again


def _reconnecting(method: Callable[..., Any]) -> Callable[..., Any]:
    """`method`, retried while its server is unreachable, for retry_seconds() in all; then StorageLost,
    and every later call of the storage fails at once (the worker is stopping).

    A request whose answer was lost may have been carried out: setting a trial's state then finds
    it finished, which counts as done when it holds the state asked for.
    """
    name = method.__name__

    @functools.wraps(method)
    def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        if self._lost:
            raise StorageLost(self._lost)
        if getattr(_depth, "n", 0):
            return method(self, *args, **kwargs)
        deadline, delay, failed = time.monotonic() + retry_seconds(), 0.5, None
        _depth.n = 1
        try:
            while True:
                try:
                    return method(self, *args, **kwargs)
                except optuna.exceptions.UpdateFinishedTrialError:
                    if failed is None or name != "set_trial_state_values":
                        raise
                    state = kwargs.get("state", args[1] if len(args) > 1 else None)
                    if self.get_trial(args[0]).state != state:
                        raise
                    return True
                except Exception as exc:
                    if not _disconnected(exc):
                        raise
                    failed = exc
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                time.sleep(min(delay, left))
                delay = min(delay * 2, 10)
        finally:
            _depth.n = 0
        lost = (f"{LOST} {self._where} for {retry_seconds():.0f} s ({one_line(_chain(failed)[-1])}); "
                f"its running trial is re-queued when it is back (run the same command; raise "
                f"{RETRY_SECONDS_ENV} to wait longer)")
        if self._latch:
            self._lost = lost
        raise StorageLost(lost) from None

    return call


def _quiet_beat(method: Callable[..., Any]) -> Callable[..., Any]:
    """A heartbeat that cannot be written is skipped: its trial goes stale, as a lost worker's should."""

    @functools.wraps(method)
    def call(self: Any, trial_id: int) -> None:
        if self._lost:
            return
        _depth.n = 1  # no retry: the next beat comes in HEARTBEAT_SECONDS anyway
        try:
            method(self, trial_id)
        except Exception as exc:
            if not _disconnected(exc):
                raise
        finally:
            _depth.n = 0

    return call


def _retry_calls(cls: type, names: list[str]) -> type:
    for name in names:
        setattr(cls, name, _reconnecting(getattr(cls, name)))
    cls.record_heartbeat = _quiet_beat(cls.record_heartbeat)
    return cls


# Every call a storage answers, as Optuna's BaseStorage names them, plus what Optuna's cache calls inside.
_CALLS = [n for n in dir(optuna.storages.BaseStorage) if not n.startswith("_") and n not in ("check_trial_is_updatable",)]


class ServerStorage(RDBStorage):
    """An RDB storage on a database server (PostgreSQL, MySQL) that waits for it through a restart.

    A worker's gives up for good once it is lost (`_latch`); the proxy's keeps trying each request.
    """

    _lost: str | None = None
    _latch = True

    @property
    def _where(self) -> str:
        return redacted(self.url)


# with the private ones Optuna's in-process cache (optuna.storages._CachedStorage) calls on it
_retry_calls(ServerStorage, [*_CALLS, "_create_new_trial", "_get_best_trial_id", "_get_stale_trial_ids", "_get_trials",
                             "_set_trial_param"])


def release(storage: optuna.storages.BaseStorage) -> None:
    """Close the database connections `storage` keeps in its pool (it reconnects if used again), so
    that a process holds connections only for the storage it works with."""
    if isinstance(storage, RDBStorage):
        storage.engine.dispose()


class GrpcStorage(GrpcStorageProxy, BaseHeartbeat):
    """Optuna's gRPC storage proxy client, with heartbeats and waiting for the proxy through a restart.

    A trial's beat is a trial system attribute (the proxy has no heartbeat call). Its value is the
    writer's clock, but stale means unchanged for HEARTBEAT_GRACE_SECONDS on the reader's clock, so
    hosts with clocks apart neither kill live trials nor keep dead ones. A running trial with no
    beat yet is not judged, as Optuna's RDB heartbeat does not judge one without a heartbeat row.
    """

    _lost: str | None = None
    _latch = True

    def __init__(self, host: str, port: int) -> None:
        super().__init__(host=host, port=port)
        self._seen: dict[int, tuple[Any, float]] = {}

    def _setup(self) -> None:
        # Optuna's client channel, but reconnecting within seconds of the proxy's return (gRPC's own
        # backoff grows to two minutes, longer than a worker waits)
        import grpc
        from optuna.storages._grpc.auto_generated import api_pb2_grpc
        from optuna.storages._grpc.client import GrpcClientCache

        self._channel = grpc.insecure_channel(f"{self._host}:{self._port}", options=[
            ("grpc.max_receive_message_length", -1), ("grpc.initial_reconnect_backoff_ms", 500),
            ("grpc.min_reconnect_backoff_ms", 500), ("grpc.max_reconnect_backoff_ms", 5000)])
        self._stub = api_pb2_grpc.StorageServiceStub(self._channel)
        self._cache = GrpcClientCache(self._stub)

    def __setstate__(self, state: dict[Any, Any]) -> None:
        super().__setstate__(state)
        self._seen = {}

    @property
    def _where(self) -> str:
        return f"{GRPC}{self._host}:{self._port}"

    def record_heartbeat(self, trial_id: int) -> None:
        self.set_trial_system_attr(trial_id, record.HEARTBEAT, time.time())

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        now, stale, seen = time.monotonic(), [], {}
        for t in self.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,)):
            beat = t.system_attrs.get(record.HEARTBEAT)
            if beat is None:
                continue
            last, since = self._seen.get(t._trial_id, (None, now))
            seen[t._trial_id] = (beat, since if last == beat else now)
            if now - seen[t._trial_id][1] >= HEARTBEAT_GRACE_SECONDS:
                stale.append(t._trial_id)
        self._seen = seen
        return stale

    def get_heartbeat_interval(self) -> int:
        return HEARTBEAT_SECONDS

    def get_heartbeat_stale_trial_callback(self) -> Callable[[optuna.Study, optuna.trial.FrozenTrial], None]:
        return RetryHeartbeatStaleTrialCallback(MAX_RETRY, inherit_intermediate_values=True)


_retry_calls(GrpcStorage, _CALLS)


def redacted(url: str) -> str:
    """A URL as it may be printed: its password replaced by ***."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return url.replace(f":{parts.password}@", ":***@", 1)


def grpc_address(url: str) -> tuple[str, int] | None:
    """Host and port of a grpc://host:port URL (None for other storages)."""
    if not url.startswith(GRPC):
        return None
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    if not parts.hostname or port is None or parts.path.strip("/") or parts.query:
        raise UserError(f"storage {url!r} is not a proxy address: write grpc://host:port, e.g. grpc://127.0.0.1:13000 "
                        "(start the proxy with `python -m study storage-proxy <database URL> --port 13000`)")
    return parts.hostname, port


def _grpc_storage(url: str) -> GrpcStorage:
    host, port = grpc_address(url)
    try:
        import grpc  # noqa: F401  (Optuna imports it lazily; missing, it would fail at the first call)
    except ImportError:
        raise UserError(f"{url} needs grpcio: pip install -e \".[grpc]\"") from None
    storage = GrpcStorage(host, port)
    try:
        storage.wait_server_ready(timeout=PROXY_CONNECT_SECONDS)
    except ConnectionError:
        raise UserError(f"no storage proxy answers at {url} (waited {PROXY_CONNECT_SECONDS} s); start one with "
                        f"`python -m study storage-proxy <database URL> --host {host} --port {port}`") from None
    return storage


def serve_proxy(url: str, host: str, port: int, threads: int = PROXY_THREADS,
                ready: Callable[[], None] | None = None) -> None:
    """Optuna's gRPC storage proxy on host:port in front of the database at `url`, until interrupted.

    It answers `threads` requests at a time and holds at most that many database connections,
    however many workers it serves. It checks nobody: anyone who reaches the port reads and
    changes every study in the database.
    """
    if not 0 < port < 65536:
        raise UserError(f"--port {port} is invalid: it must be 1-65535")
    if threads < 1:
        raise UserError(f"--threads {threads} is invalid: it must be >= 1")
    if url.startswith(GRPC):
        raise UserError(f"{url} is a proxy already; pass the database URL the proxy should serve")
    try:
        import grpc  # noqa: F401  (Optuna's server imports it; missing, that would be a traceback)
    except ImportError:
        raise UserError("the storage proxy needs grpcio: pip install -e \".[grpc]\"") from None
    from optuna.storages._grpc.server import make_server

    db = open_storage(url, heartbeat=False, create_folder=False, connections=threads)
    db._latch = False
    # Optuna's advice: the proxy serves through its in-process cache (get_storage wraps RDB storages)
    server = make_server(optuna.storages.get_storage(db), host, port, ThreadPoolExecutor(threads))
    try:
        server.start()
    except RuntimeError as exc:
        raise UserError(f"cannot listen on {host}:{port} ({one_line(exc)}); is the port taken? pass another --port") from None
    if ready is not None:
        ready()
    try:
        server.wait_for_termination()
    finally:
        server.stop(grace=None)
        db.engine.dispose()


def _rdb_storage(url: str, **kwargs: Any) -> optuna.storages.RDBStorage:
    """Optuna's RDBStorage, retried while another process creates the same schema on a server database.

    Two first starts at once on an empty PostgreSQL database both run CREATE TABLE / CREATE TYPE,
    and all but one fail (IntegrityError on pg_type_typname_nsp_index); a second try finds the
    tables there. SQLite files get their schema whole instead (_create_sqlite_whole).
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
        return _grpc_storage(url)
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
        server = {"pool_size": connections, "max_overflow": 0, "pool_pre_ping": True}
        storage = _rdb_storage(url, engine_kwargs={"connect_args": {"timeout": 60}} if path else server,
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


def open_to_read(url: str) -> optuna.storages.BaseStorage:
    """A storage that is only read (reports): a database of another Optuna version is fine, no tables
    are created, and a file on a read-only mount is read without writing."""
    if url.startswith(GRPC):
        return _grpc_storage(url)
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

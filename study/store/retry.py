"""A server storage (a database server, the storage proxy) that stops answering is retried for
`retry_seconds()` (STUDY_STORAGE_RETRY_SECONDS, default RETRY_SECONDS); then the worker stops with one
line (StorageLost) and its trial stays RUNNING, to be re-queued as a dead worker's. A storage that
cannot be written (a full disk) is one line too."""

from __future__ import annotations

import contextlib
import functools
import os
import threading
import time
from typing import Any, Callable, Iterator

import optuna
from optuna.storages import RDBStorage

from study.errors import UserError, one_line
from study.store.optuna_internals import CACHE_CALLS
from study.store.urls import redacted

RETRY_SECONDS = 120  # how long a worker waits for a lost database server or proxy before it stops
RETRY_SECONDS_ENV = "STUDY_STORAGE_RETRY_SECONDS"
LOST = "lost the storage"


def chain(exc: BaseException) -> list[BaseException]:
    """`exc` and the exceptions it was raised from or while handling, outermost first."""
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
        found = chain(exc)
        reason = next((e for e in found if isinstance(e, UserError)), None)
        if reason is not None:
            raise reason from None
        import sqlalchemy

        if not any(isinstance(e, (sqlalchemy.exc.OperationalError, optuna.exceptions.StorageInternalError, OSError))
                   for e in found):
            raise
        raise UserError(f"the storage {url} could not be written ({one_line(found[-1])}); free disk space or fix "
                        "the database, then run the same command to resume") from None


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

    for e in chain(exc):
        if isinstance(e, sqlalchemy.exc.OperationalError):  # psycopg: refused, closed, server restarting
            return True
        if type(e).__module__.startswith("grpc") and callable(getattr(e, "code", None)):
            # UNAVAILABLE: the proxy is unreachable; UNKNOWN with LOST in it: the proxy's database is
            # (the proxy answers an error it raised with its text, this module on both ends)
            code, details = getattr(e.code(), "name", ""), str(e.details() or "")
            return code == "UNAVAILABLE" or (code == "UNKNOWN" and LOST in details)
    return False


_depth = threading.local()  # an outer storage call retries; calls it makes inside do not retry again


def _finished_as_asked(self: Any, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    """Whether a state change whose answer was lost was carried out: the trial holds the state asked for."""
    state = kwargs.get("state", args[1] if len(args) > 1 else None)
    return name == "set_trial_state_values" and self.get_trial(args[0]).state == state


def _lost(self: Any, failed: BaseException) -> StorageLost:
    lost = (f"{LOST} {self._where} for {retry_seconds():.0f} s ({one_line(chain(failed)[-1])}); "
            f"its running trial is re-queued when it is back (run the same command; raise "
            f"{RETRY_SECONDS_ENV} to wait longer)")
    if self._latch:
        self._lost = lost
    return StorageLost(lost)


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
                    if failed is None or not _finished_as_asked(self, name, args, kwargs):
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
        raise _lost(self, failed) from None

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


def retry_calls(cls: type, names: list[str]) -> type:
    """`cls` with each of `names` reconnecting, and its heartbeat skipped while the server is away."""
    for name in names:
        setattr(cls, name, _reconnecting(getattr(cls, name)))
    cls.record_heartbeat = _quiet_beat(cls.record_heartbeat)
    return cls


# Every call a storage answers, as Optuna's BaseStorage names them.
CALLS = [n for n in dir(optuna.storages.BaseStorage) if not n.startswith("_") and n not in ("check_trial_is_updatable",)]


class ServerStorage(RDBStorage):
    """An RDB storage on a database server (PostgreSQL, MySQL) that waits for it through a restart.

    A worker's gives up for good once it is lost (`_latch`); the proxy's keeps trying each request.
    """

    _lost: str | None = None
    _latch = True

    @property
    def _where(self) -> str:
        return redacted(self.url)


# with the private ones Optuna's in-process cache calls on it
retry_calls(ServerStorage, [*CALLS, *CACHE_CALLS])

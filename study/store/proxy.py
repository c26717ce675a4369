"""`grpc://host:port` reaches a database through Optuna's gRPC storage proxy (`python -m study
storage-proxy`, `serve_proxy`), for more workers than the database takes connections.

The proxy has no heartbeat call, so `GrpcStorage` keeps Optuna's heartbeat protocol with the beat
stored as a trial system attribute (owners.HEARTBEAT), judged stale by how long it has not changed
on the reader's own clock: hosts' clocks need not agree.
"""

from __future__ import annotations

import time
from typing import Any, Callable

import optuna
from optuna.storages import GrpcStorageProxy
from optuna.trial import TrialState

from study.errors import UserError, one_line
from study.store import heartbeat as beats
from study.store import optuna_internals as internals
from study.store import owners
from study.store.retry import CALLS, retry_calls
from study.store.urls import GRPC, grpc_address

PROXY_CONNECT_SECONDS = 10  # a grpc:// URL nobody answers at is a wrong address or a proxy not started
PROXY_THREADS = 10  # Optuna's default: requests served at once, so database connections the proxy holds
# Optuna's client channel, but reconnecting within seconds of the proxy's return (gRPC's own backoff
# grows to two minutes, longer than a worker waits)
CHANNEL_OPTIONS = [("grpc.max_receive_message_length", -1), ("grpc.initial_reconnect_backoff_ms", 500),
                   ("grpc.min_reconnect_backoff_ms", 500), ("grpc.max_reconnect_backoff_ms", 5000)]


class GrpcStorage(GrpcStorageProxy, internals.BaseHeartbeat):
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

    def _setup(self) -> None:  # Optuna's hook that opens the client channel
        internals.grpc_channel(self, CHANNEL_OPTIONS)

    def __setstate__(self, state: dict[Any, Any]) -> None:
        super().__setstate__(state)
        self._seen = {}

    @property
    def _where(self) -> str:
        host, port = internals.grpc_address_of(self)
        return f"{GRPC}{host}:{port}"

    def record_heartbeat(self, trial_id: int) -> None:
        self.set_trial_system_attr(trial_id, owners.HEARTBEAT, time.time())

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:  # BaseHeartbeat's hook
        now, stale, seen = time.monotonic(), [], {}
        for t in self.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,)):
            beat = t.system_attrs.get(owners.HEARTBEAT)
            if beat is None:
                continue
            key = internals.trial_id(t)
            last, since = self._seen.get(key, (None, now))
            seen[key] = (beat, since if last == beat else now)
            if now - seen[key][1] >= beats.HEARTBEAT_GRACE_SECONDS:
                stale.append(key)
        self._seen = seen
        return stale

    def get_heartbeat_interval(self) -> int:
        return beats.HEARTBEAT_SECONDS

    def get_heartbeat_stale_trial_callback(self) -> Callable[[optuna.Study, optuna.trial.FrozenTrial], None]:
        return beats.stale_trial_callback()


retry_calls(GrpcStorage, CALLS)


def grpc_storage(url: str) -> GrpcStorage:
    """The proxy at a grpc:// URL, once it answers."""
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
    from study.store.storage import open_storage  # opening a grpc:// URL comes here: a cycle at import

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
    db = open_storage(url, heartbeat=False, create_folder=False, connections=threads)
    db._latch = False
    # Optuna's advice: the proxy serves through its in-process cache (get_storage wraps RDB storages)
    server = internals.grpc_server(optuna.storages.get_storage(db), host, port, threads)
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

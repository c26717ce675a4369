"""Connections that N workers hold on PostgreSQL, directly and through the gRPC storage proxy (docs/cluster.md).

    STUDY_TEST_POSTGRES_URL=$(bash .ci/postgres) PYTHONPATH=. python docs/probes/cluster_connections.py 4 8
    STUDY_TEST_POSTGRES_URL=$(bash .ci/postgres) PYTHONPATH=. python docs/probes/cluster_connections.py --clients 24

For each N: a fresh database, N `python -m study run` processes started at once on one study (2N
trials of one epoch on 2% of the CIFAR-10 subset), pg_stat_activity sampled every 0.2 s; once
directly (--storage postgresql://...) and once through `python -m study storage-proxy` (default 10
threads). Prints one Markdown row per run: workers, trials, wall time, most connections held.
With --clients N: N storage-only workers instead (no training: each asks, beats, reports 3 steps
and tells 10 trials through study.store.storage, as a worker's storage calls go), for more processes
than this 2-core machine can train at once.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import uuid
from pathlib import Path

import optuna
import sqlalchemy
from optuna.trial import TrialState

ROOT = Path(__file__).resolve().parents[2]
DATA = os.environ.get("STUDY_DATA_DIR") or str(ROOT.parent / "shared" / "data")
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
SPACE = '''"""probe: NaiveNet at half width, lr searched."""
model = "naivenet"
dataset = "cifar10"
resolution = 32
width = 0.5
pruner = "none"
def suggest(trial):
    return {"lr": trial.suggest_float("lr", 1e-3, 1e-1, log=True)}
'''


CLIENT = """
import sys, optuna
from study.store import storage
optuna.logging.set_verbosity(optuna.logging.WARNING)
db = storage.open_storage(sys.argv[1])
study = optuna.load_study(study_name="probe", storage=db, sampler=optuna.samplers.RandomSampler())
for _ in range(10):
    trial = study.ask()
    x = trial.suggest_float("lr", 1e-3, 1e-1, log=True)
    for step in range(3):
        db.record_heartbeat(trial._trial_id)
        trial.report(x * step, step)
    study.tell(trial, x)
storage.release(db)
"""


def measure(admin: sqlalchemy.Engine, base: str, n: int, proxied: bool, folder: Path, clients: bool = False) -> str:
    name = f"probe_{uuid.uuid4().hex[:8]}"
    with admin.connect() as c:
        c.exec_driver_sql(f"CREATE DATABASE {name}")
    db = f"{base}/{name}"
    optuna.storages.RDBStorage(db).engine.dispose()  # the schema
    proxy = None
    url = db
    if proxied:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        proxy = subprocess.Popen([sys.executable, "-m", "study", "storage-proxy", db, "--port", str(port)],
                                 env=ENV, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert "listening" in proxy.stdout.readline()
        url = f"grpc://127.0.0.1:{port}"
    most, stop = [0], threading.Event()

    def watch() -> None:
        with admin.connect() as c:
            while not stop.wait(0.2):
                most[0] = max(most[0], c.exec_driver_sql(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (name,)).scalar())

    watcher = threading.Thread(target=watch)
    watcher.start()
    start = time.monotonic()
    args = [sys.executable, "-m", "study", "run", str(folder / "probe.py"), "--data-dir", DATA, "--storage", url,
            "--trials", str(2 * n), "--epochs", "1", "--set", "data_fraction=0.02", "--plain"]
    if clients:
        setup = optuna.storages.RDBStorage(db)
        optuna.create_study(study_name="probe", storage=setup, direction="maximize")
        setup.engine.dispose()
        args = [sys.executable, "-c", CLIENT, url]
    procs = [subprocess.Popen(args, cwd=folder, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
             for _ in range(n)]
    errors = [p.communicate()[1] for p in procs if p.wait() != 0]
    wall = time.monotonic() - start
    stop.set()
    watcher.join()
    if proxy is not None:
        proxy.terminate()
        proxy.wait()
    storage = optuna.storages.RDBStorage(db)
    trials = optuna.load_study(study_name="probe", storage=storage).get_trials()
    storage.engine.dispose()
    with admin.connect() as c:
        c.exec_driver_sql(f"DROP DATABASE {name} WITH (FORCE)")
    done = sum(t.state == TrialState.COMPLETE for t in trials)
    route = ("proxy (10 threads)" if proxied else "direct") + (", storage-only workers" if clients else "")
    return (f"| {route} | {n} | {done} of {len(trials)} | {wall:.0f} s | {most[0]} |"
            + (f" {len(errors)} failed: {errors[0].strip().splitlines()[-1]}" if errors else ""))


def main() -> None:
    url = os.environ["STUDY_TEST_POSTGRES_URL"]
    admin = sqlalchemy.create_engine(url, isolation_level="AUTOCOMMIT")
    print("| route | workers | trials complete | wall time | most connections held |\n|---|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "probe.py").write_text(textwrap.dedent(SPACE))
        clients = sys.argv[1:2] == ["--clients"]
        for n in map(int, sys.argv[1 + clients:] or ["4"]):
            for proxied in (False, True):
                print(measure(admin, url.rsplit("/", 1)[0], n, proxied, folder, clients), flush=True)
    admin.dispose()


if __name__ == "__main__":
    main()

"""Past one machine: four processes as four nodes on one study through Optuna's gRPC storage proxy in front
of PostgreSQL (budgets, ablation grids and fused arrays spent exactly, a killed node's trial retried, a lost
proxy waited for and then given up on), and the cluster recipe's files (examples/cluster/)."""

import os
import signal
import socket
import stat
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from pathlib import Path
from types import SimpleNamespace

import optuna
import pytest
import yaml
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState
from processes import ENV, ONE_KNOB_SPACE, start

from study.errors import UserError
from study.search import budget
from study.store import heartbeat, owners, record, retry
from study.store import proxy as proxy_module
from study.store import storage as study_storage
from study.store.vocabulary import StoppedBy

ROOT = Path(__file__).resolve().parents[1]
SLURM = ROOT / "examples" / "cluster" / "slurm.sh"
MANIFEST = ROOT / "examples" / "cluster" / "job.yaml"
NODES = 4
PROXY_THREADS = 3  # fewer than the nodes: the proxy's connection cap is what is tested
NO_POSTGRES = "no PostgreSQL server: .ci/run starts one (.ci/postgres) and sets STUDY_TEST_POSTGRES_URL"

SEARCH = ONE_KNOB_SPACE

ABLATION = '''
model = "naivenet"
dataset = "cifar10"
resolution = 32
width = 0.5
components = {"mixup_alpha": (0.2, 0.0)}
design = "one_out"
seeds = 4
'''


def write_space(folder: Path, body: str, name: str) -> str:
    path = folder / f"{name}.py"
    path.write_text(f'"""{name}: a small space for the cluster tests."""\n' + textwrap.dedent(body))
    return str(path)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Proxy:
    """`python -m study storage-proxy` in a process of its own, stopped and started like a server."""

    def __init__(self, db: str, port: int) -> None:
        self.db, self.port, self.proc = db, port, None

    @property
    def url(self) -> str:
        return f"grpc://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "study", "storage-proxy", self.db, "--port", str(self.port),
             "--threads", str(PROXY_THREADS)], env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()  # printed once it listens
        assert "listening on " + self.url in line, (line, self.proc.stderr.read() if self.proc.poll() is not None else "")

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()


@pytest.fixture(scope="module")
def database():
    """A new PostgreSQL database for these tests (the study role may create them: .ci/postgres), dropped after;
    each test uses a study of its own in it."""
    url = os.environ.get("STUDY_TEST_POSTGRES_URL")
    if not url:
        pytest.skip(NO_POSTGRES)
    pytest.importorskip("grpc", reason="the gRPC storage proxy needs grpcio: pip install -e '.[grpc]'")
    import sqlalchemy

    name = f"cluster_{uuid.uuid4().hex[:10]}"
    admin = sqlalchemy.create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.exec_driver_sql(f"CREATE DATABASE {name}")
    db = url.rsplit("/", 1)[0] + "/" + name
    direct = study_storage.open_storage(db, heartbeat=False)  # the schema, before the proxy serves it
    direct.engine.dispose()  # connections only while the test reads: the others are the proxy's
    yield SimpleNamespace(url=db, name=name, admin=admin, storage=direct)
    direct.engine.dispose()
    with admin.connect() as c:
        c.exec_driver_sql(f"DROP DATABASE {name} WITH (FORCE)")
    admin.dispose()


@pytest.fixture(scope="module")
def proxy(database):
    p = Proxy(database.url, free_port())
    p.start()
    yield p
    if p.proc.poll() is None:
        p.proc.terminate()
        p.proc.wait()


class Connections:
    """The most connections to `name` that pg_stat_activity showed while it was watched."""

    def __init__(self, admin, name: str) -> None:
        self.admin, self.name, self.most, self.stop = admin, name, 0, threading.Event()
        self.thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        with self.admin.connect() as c:
            while not self.stop.wait(0.2):
                n = c.exec_driver_sql("SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (self.name,)).scalar()
                self.most = max(self.most, n)

    def __enter__(self) -> "Connections":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join()


def nodes(args: list[str], cwd: Path, n: int = NODES, env: dict | None = None) -> list[subprocess.Popen]:
    """`n` runs of one command started at once, as `n` nodes would be; they share `cwd` as nodes share a
    filesystem (checkpoints in its runs/)."""
    return [start(*args, cwd=cwd, env=env) for _ in range(n)]


def finish(procs: list[subprocess.Popen]) -> list[tuple[int, str]]:
    return [(p.wait(timeout=600), p.communicate()[1]) for p in procs]


def load(database: SimpleNamespace, name: str) -> list[optuna.trial.FrozenTrial]:
    """The study's trials, read directly from PostgreSQL."""
    return optuna.load_study(study_name=name, storage=database.storage).get_trials()


@pytest.mark.slow
def test_four_nodes_through_the_proxy_spend_an_epoch_budget_exactly(data_dir, tmp_path, database, proxy):
    space = write_space(tmp_path, SEARCH, "cluster_search")
    args = ["run", space, "--data-dir", data_dir, "--storage", proxy.url, "--budget", "7ep", "--epochs", "2",
            "--set", "data_fraction=0.03", "--plain"]
    with Connections(database.admin, database.name) as connections:
        results = finish(nodes(args, tmp_path))
    assert [rc for rc, _ in results] == [0] * NODES, results
    trials = load(database, "cluster_search")  # read back directly from PostgreSQL
    assert budget.Budget(epochs=7).spent_epochs(trials) == 7  # 7 = 3 full 2-epoch trials + 1 cut short
    assert any(record.trial_info(t).stopped_by == StoppedBy.BUDGET for t in trials)
    workers, hosts = owners.workers_and_hosts(trials)
    assert hosts == 1 and 2 <= workers <= NODES
    from reports import sections, sources

    source = sources.open_source(database.url)
    [overview] = sections.overview([sources.Loaded(optuna.load_study(study_name="cluster_search", storage=source.storage),
                                                   source)]).parts
    assert f"cluster_search: trained by {workers} worker processes on 1 host." in overview.items
    assert 0 < connections.most <= PROXY_THREADS  # four nodes, at most the proxy's threads


@pytest.mark.slow
def test_four_nodes_through_the_proxy_train_an_ablation_grid_in_fused_arrays_exactly_once(data_dir, tmp_path,
                                                                                           database, proxy):
    space = write_space(tmp_path, ABLATION, "cluster_ablation")
    args = ["run", space, "--data-dir", data_dir, "--storage", proxy.url, "--epochs", "1", "--fuse", "2",
            "--set", "data_fraction=0.03", "--plain"]
    results = finish(nodes(args, tmp_path))
    assert [rc for rc, _ in results] == [0] * NODES, results
    trials = load(database, "cluster_ablation")
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    cells = sorted((record.trial_info(t).variant, record.trial_info(t).seed) for t in done)
    assert len(cells) == 8 and len(set(cells)) == 8  # 2 variants x 4 seeds, each trained once
    # nodes that start at once may each queue a cell: its trials after the first step aside, storing why,
    # as does one asked for an array when the queue is empty
    assert all(t.state == TrialState.FAIL and record.stepped_aside(t) for t in trials if t not in done)
    # an array asks for cells no other trial holds, so the first node to ask gets two of the 8 (the
    # other three take at most 2 x 3 between its two asks), and they fuse: mixup_alpha and seed are fusible
    assert any(record.trial_info(t).array_size == 2 for t in done)


@pytest.mark.slow
def test_a_node_killed_mid_trial_through_the_proxy_has_its_trial_retried_from_its_checkpoint(data_dir, tmp_path,
                                                                                              database, proxy):
    space = write_space(tmp_path, SEARCH, "cluster_kill")
    args = ["run", space, "--data-dir", data_dir, "--storage", proxy.url, "--trials", "5", "--epochs", "3",
            "--set", "data_fraction=0.03", "--plain"]
    procs = nodes(args, tmp_path)
    pids = {p.pid: p for p in procs}
    deadline, victim = time.time() + 300, None
    while victim is None:
        assert time.time() < deadline, "no trial reached its first epoch"
        time.sleep(0.3)
        try:
            running = load(database, "cluster_kill")
        except KeyError:  # the study is not created yet
            continue
        for t in running:
            owner = owners.owner(t)
            saved = list(tmp_path.glob(f"runs/checkpoints/*/trial-{t.number}.pt"))  # written after the report
            if t.state == TrialState.RUNNING and owner and owner.pid in pids and t.intermediate_values and saved:
                victim, killed = pids[owner.pid], t.number
                break
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    results = finish([p for p in procs if p is not victim])
    assert [rc for rc, _ in results] == [0] * (NODES - 1), results
    trials = load(database, "cluster_kill")
    assert trials[killed].state == TrialState.FAIL
    retries = [t for t in trials if record.trial_info(t).retry_of == killed
               or RetryHeartbeatStaleTrialCallback.retried_trial_number(t) == killed]
    assert [t.state for t in retries] == [TrialState.COMPLETE]
    assert (record.trial_info(retries[0]).resumed_from_epoch or 0) >= 1, results  # from the shared checkpoint
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 5


@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used with Study.optimize")
def test_a_silent_trial_behind_the_proxy_is_failed_and_requeued_by_its_heartbeat(database, proxy, monkeypatch):
    # a worker on another host cannot be seen dying; its trial is judged by its beat, as Optuna's RDB heartbeat does
    monkeypatch.setattr(heartbeat, "HEARTBEAT_GRACE_SECONDS", 1.0)
    storage = study_storage.open_storage(proxy.url)
    study = optuna.create_study(storage=storage, study_name="beats", direction="maximize")
    silent, live = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)}), study.ask()
    for t in (silent, live):
        storage.record_heartbeat(t._trial_id)
    optuna.storages.fail_stale_trials(study)  # first look: nothing is stale yet
    time.sleep(1.2)
    storage.record_heartbeat(live._trial_id)
    optuna.storages.fail_stale_trials(study)
    trials = load(database, "beats")
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.RUNNING, TrialState.WAITING]
    assert RetryHeartbeatStaleTrialCallback.retried_trial_number(trials[2]) == silent.number
    assert trials[2].params == trials[0].params


@pytest.mark.slow
def test_a_worker_waits_out_a_network_blip_to_the_proxy_and_gives_up_on_a_lost_one_in_one_line(data_dir, tmp_path,
                                                                                                database, proxy):
    link = Forwarder(("127.0.0.1", proxy.port))  # the network between the worker and the proxy
    link.start()
    space = write_space(tmp_path, SEARCH, "cluster_lost")
    args = ["run", space, "--data-dir", data_dir, "--storage", f"grpc://127.0.0.1:{link.port}", "--trials", "2",
            "--epochs", "3", "--set", "data_fraction=0.03", "--plain"]
    env = {**ENV, retry.RETRY_SECONDS_ENV: "15"}
    [worker] = nodes(args, tmp_path, n=1, env=env)

    def wait_for_epoch(trial: int) -> None:
        deadline = time.time() + 300
        while not list(tmp_path.glob(f"runs/checkpoints/*/trial-{trial}.pt")):
            assert worker.poll() is None and time.time() < deadline, worker.communicate()
            time.sleep(0.2)

    wait_for_epoch(0)
    link.cut()  # a blip, longer than an epoch here: back within the worker's 15 s
    time.sleep(5)
    link.start()
    wait_for_epoch(1)
    link.cut()  # lost for good
    rc, err = worker.wait(timeout=120), worker.communicate()[1]
    assert rc == 2 and err.strip().splitlines() == [err.strip()] and err.startswith("error: lost the storage"), err
    link.start()
    rerun = subprocess.run([sys.executable, "-m", "study", *args], cwd=tmp_path, env=env, capture_output=True,
                           text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    trials = load(database, "cluster_lost")
    assert trials[0].state == TrialState.COMPLETE and len(trials[0].intermediate_values) == 3
    assert trials[1].state == TrialState.FAIL and "died" in record.trial_info(trials[1]).fail_reason
    assert trials[2].state == TrialState.COMPLETE and RetryHeartbeatStaleTrialCallback.retried_trial_number(trials[2]) == 1
    assert record.trial_info(trials[2]).resumed_from_epoch >= 1


def test_the_proxy_refuses_bad_input_in_one_line(tmp_path, capsys):
    from study.cli import main

    for args, said in ((["postgresql://x@127.0.0.1:1/none", "--port", "0"], "--port 0 is invalid"),
                       ([str(tmp_path / "missing.db")], "does not exist"),
                       (["grpc://127.0.0.1:13000"], "is a proxy already"),
                       (["postgresql://x@127.0.0.1:1/none", "--threads", "0"], "--threads 0 is invalid")):
        assert main(["storage-proxy", *args]) == 2
        err = capsys.readouterr().err
        assert said in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "missing.db").exists()


def test_a_grpc_url_without_a_proxy_or_port_is_one_line(tmp_path, monkeypatch):
    pytest.importorskip("grpc", reason="the gRPC storage proxy needs grpcio: pip install -e '.[grpc]'")
    monkeypatch.setattr(proxy_module, "PROXY_CONNECT_SECONDS", 1)
    with pytest.raises(UserError, match="no storage proxy answers at grpc://127.0.0.1:"):
        study_storage.open_storage(f"grpc://127.0.0.1:{free_port()}")
    with pytest.raises(UserError, match="write grpc://host:port"):
        study_storage.open_storage("grpc://127.0.0.1")


# --- the recipe's files ------------------------------------------------------------------------------------

def _stub_python(folder: Path) -> Path:
    """A `python` that writes its arguments, one a line, to $ARGS_FILE: what the script would start."""
    stub = folder / "bin" / "python"
    stub.parent.mkdir()
    stub.write_text('#!/bin/sh\nfor a in "$@"; do echo "$a"; done > "$ARGS_FILE"\n')
    stub.chmod(stub.stat().st_mode | stat.S_IXUSR)
    return stub.parent


def _job_command() -> list[str]:
    docs = list(yaml.safe_load_all(MANIFEST.read_text()))
    [job] = [d for d in docs if d["kind"] == "Job"]
    assert job["spec"]["completionMode"] == "Indexed" and job["spec"]["completions"] == job["spec"]["parallelism"] > 1
    [container] = job["spec"]["template"]["spec"]["containers"]
    return container["command"]


def test_the_slurm_script_starts_the_manifests_command_for_its_array_task(tmp_path):
    command = _job_command()
    assert command[:4] == ["python", "-m", "study", "run"]
    flags = dict(zip(command[5::2], command[6::2]))
    env = {**os.environ, "PATH": f"{_stub_python(tmp_path)}:{os.environ['PATH']}", "ARGS_FILE": str(tmp_path / "args"),
           "SLURM_ARRAY_TASK_ID": "2", "SLURM_SUBMIT_DIR": str(ROOT),
           "SPACE": command[4], "STORAGE": flags["--storage"], "DATA_DIR": flags["--data-dir"]}
    r = subprocess.run(["bash", str(SLURM)], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "array task 2 on " in r.stderr
    assert (tmp_path / "args").read_text().splitlines() == command[1:]  # the same command, word for word

    for missing in ("SLURM_ARRAY_TASK_ID", "STORAGE"):
        r = subprocess.run(["bash", str(SLURM)], env={k: v for k, v in env.items() if k != missing},
                           capture_output=True, text=True, timeout=60)
        assert r.returncode != 0 and missing in r.stderr


def test_the_manifests_proxy_serves_the_workers_storage():
    docs = {d["kind"]: d for d in yaml.safe_load_all(MANIFEST.read_text())}
    proxy = docs["Deployment"]["spec"]["template"]["spec"]["containers"][0]["command"]
    assert proxy[:4] == ["python", "-m", "study", "storage-proxy"]
    port = proxy[proxy.index("--port") + 1]
    storage = _job_command()[_job_command().index("--storage") + 1]
    assert storage == f"grpc://{docs['Service']['metadata']['name']}:{port}"
    assert docs["Service"]["spec"]["ports"][0]["port"] == int(port)
    # the proxy's own arguments parse as the CLI's
    from study.cli import parser

    parsed = parser().parse_args(proxy[3:])
    assert parsed.host == "0.0.0.0" and parsed.port == int(port)


class Forwarder:
    """A TCP port that forwards to PostgreSQL and can be cut and restored: a network blip, a server restart."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target, self.port, self.open = target, free_port(), []

    def start(self) -> None:
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", self.port))
        self.listener.listen()
        threading.Thread(target=self._accept, args=(self.listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.target)
            self.open += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                s.close()

    def cut(self) -> None:
        self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() blocked on it; close() alone does not
        self.listener.close()
        for s in self.open:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()
        self.open = []


@pytest.mark.parametrize("route", ["postgresql", "proxy"])
def test_a_worker_waits_for_its_storage_through_a_blip_then_gives_up_in_one_line(route, database, proxy, monkeypatch):
    from urllib.parse import urlsplit

    monkeypatch.setenv(retry.RETRY_SECONDS_ENV, "4")
    parts = urlsplit(database.url)
    link = Forwarder((parts.hostname, parts.port) if route == "postgresql" else ("127.0.0.1", proxy.port))
    link.start()
    if route == "postgresql":
        url = database.url.replace(f"@{parts.hostname}:{parts.port}/", f"@127.0.0.1:{link.port}/")
        shown = f"postgresql://study:***@127.0.0.1:{link.port}/"
    else:
        url = shown = f"grpc://127.0.0.1:{link.port}"
    storage = study_storage.open_storage(url)
    study = optuna.create_study(storage=storage, study_name=f"blip-{route}", direction="maximize")
    study.enqueue_trial({"x": 1.0})
    link.cut()
    threading.Timer(1.5, link.start).start()
    start = time.monotonic()
    study.enqueue_trial({"x": 2.0})  # waits for the storage
    assert time.monotonic() - start >= 1.5
    assert [t.system_attrs["fixed_params"] for t in study.get_trials()] == [{"x": 1.0}, {"x": 2.0}]

    link.cut()
    start = time.monotonic()
    with pytest.raises(retry.StorageLost) as lost:
        study.enqueue_trial({"x": 3.0})
    assert 4 <= time.monotonic() - start < 30
    message = str(lost.value)
    assert message.startswith(f"lost the storage {shown}") and "\n" not in message
    assert ":study@" not in message  # the password is not printed
    start = time.monotonic()
    with pytest.raises(retry.StorageLost):  # the worker is stopping: no second wait
        study.get_trials()
    assert time.monotonic() - start < 1
    study_storage.release(storage)
    assert len(load(database, f"blip-{route}")) == 2

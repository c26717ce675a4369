"""`python -m study run|train ...`: the command line over spaces, training and studies."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from rich.console import Console

from study.config import Config, parse_overrides
from study.errors import Terminated, UserError, out_of_memory
from study.search.progress import epoch_line, make_console, top_trials_table
from study.spaces import space as spaces
from study.store import record, urls
from study.store.proxy import PROXY_THREADS, serve_proxy


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("space", help="space file, e.g. spaces/naivenet128.py")
    p.add_argument("--data-dir", help="folder holding cifar-10-batches-py/ and cifar-100-python/ "
                   "(default: $STUDY_DATA_DIR, else ~/.cache/study/data)")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                   help="fix a setting, e.g. --set lr=0.05 (repeatable)")
    p.add_argument("--epochs", type=int, help="epochs per trial (same as --set epochs=N)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), help="training device (default auto: cuda if present)")
    p.add_argument("--seed", type=int, help="training seed (and the sampler's seed for run)")


def parser(command: str | None = None) -> argparse.ArgumentParser:
    """The command line; the bench's own arguments only where `command` is "bench", so that no other
    command imports the benchmarks."""
    p = argparse.ArgumentParser(prog="python -m study", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    _run_arguments(sub.add_parser("run", help="search a space with Optuna; resumes a stored study"))
    sub.add_parser("spaces", help="list the space files with their kind, budget and description")
    _proxy_arguments(sub.add_parser("storage-proxy", help="Optuna's gRPC storage proxy in front of a database, for "
                                    "many workers (they pass --storage grpc://host:port); unauthenticated"))
    # reports/ renders; study/ only hands it the arguments (data flows study -> stored studies -> reports)
    from reports import cli as reports_cli

    reports_cli.add_arguments(sub.add_parser("report", help="HTML page + tables from stored studies"))
    reports_cli.add_dashboard_arguments(sub.add_parser("dashboard", help="optuna-dashboard on 127.0.0.1 with the artifacts"))
    bench = sub.add_parser("bench", help="training throughput: the seed's way against ours, and more")
    if command == "bench":
        from study.bench import speed

        speed.add_arguments(bench)
    path = sub.add_parser("ablation-path", help="retrain the path from a study's reference trial to its best")
    _retrain_arguments(path, "the search study, when the storage holds several", "the search's storage")
    score = sub.add_parser("test-score", aliases=["final"],
                           help="retrain the chosen configuration(s) with several seeds; score each once on test")
    _retrain_arguments(score, "the search, ablation or comparison, when the storage holds several", "the study's storage")
    score.add_argument("--top", type=int, default=1, help="score the k best trials of a search (default 1); "
                       "an ablation or comparison scores every variant")
    train = sub.add_parser("train", help="train one configuration (the space's defaults) without a study")
    _common(train)
    train.add_argument("--test", action="store_true", help="also score the test set (kept apart from validation)")
    train.add_argument("--json", action="store_true", help="print the metrics as one JSON object on the last line")
    return p


def _run_arguments(run: argparse.ArgumentParser) -> None:
    _common(run)
    run.add_argument("--storage", help="Optuna storage URL (default sqlite:///runs/<space>.db), or grpc://host:port "
                     "for a storage proxy (`storage-proxy`)")
    run.add_argument("--study-name", help="study name (default: the space's file name)")
    run.add_argument("--trials", type=int, help="trial budget, counting trials of earlier runs (default: the space's)")
    run.add_argument("--budget", help="compute budget, counting earlier runs: epochs trained (120ep) or seconds of "
                     "trials (600s, 10m, 2h); pruned trials' saved epochs buy new trials (default: the space's)")
    run.add_argument("--timeout", type=float, help="stop starting new trials after this many seconds")
    run.add_argument("--workers", type=int,
                     help="worker processes sharing the study (CPU threads are split); default: 1 on CPU, "
                          "4 per GPU (workers.TRIALS_PER_GPU), 1 per GPU when trials train as fused arrays")
    run.add_argument("--devices", help="comma-separated devices dealt out to the workers, e.g. cuda:0,cuda:1")
    run.add_argument("--fuse", type=int, help="trials trained at a time as one fused model (1: one by one); "
                     "default: the space's, else 8 on a GPU at <= 64 px and 1 elsewhere (study/search/arrays.py)")
    run.add_argument("--force", action="store_true", help="run a space even without the GPU / full data it needs")
    run.add_argument("--plain", action="store_true",
                     help="plain log lines instead of live bars (the default when output is not a terminal)")


def _proxy_arguments(proxy: argparse.ArgumentParser) -> None:
    proxy.add_argument("storage", help="the database the proxy serves: an SQLAlchemy URL (postgresql://...) or a .db file")
    proxy.add_argument("--port", type=int, default=13000, help="port to listen on (default 13000)")
    proxy.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1, this machine "
                       "only; 0.0.0.0 for every interface: anyone who reaches it can change every study)")
    proxy.add_argument("--threads", type=int, default=PROXY_THREADS,
                       help="requests served at once = database connections held at most (default %(default)s)")


def _retrain_arguments(p: argparse.ArgumentParser, study_help: str, storage_help: str) -> None:
    """What the commands that retrain a stored study's configurations share."""
    p.add_argument("storage", help=f"{storage_help}: a .db file or an SQLAlchemy URL")
    p.add_argument("--study-name", help=study_help)
    p.add_argument("--seeds", type=int, help="seeds per configuration (default: the space's)")
    p.add_argument("--data-dir", help="data folder (default: the one the study used)")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="fix a setting on every run")
    p.add_argument("--epochs", type=int, help="epochs per run (same as --set epochs=N)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"))


def _fixed(args: argparse.Namespace, declared: dict[str, Any] | None = None) -> dict[str, Any]:
    """--set values (of built-in settings, or of the space's own `declared` ones), then the shorthand
    flags, which win."""
    flags = {n: getattr(args, n, None) for n in ("data_dir", "epochs", "device", "seed")}
    flags = {n: v for n, v in flags.items() if v is not None}
    return {**parse_overrides(args.set, declared), **flags}


def _run(args: argparse.Namespace, console: Console) -> None:
    from study.search import budget, recovery, runner

    recovery.handle_stop_signals()
    space = spaces.load(args.space)
    if args.trials is not None and args.trials < 1:
        raise UserError(f"--trials {args.trials} is invalid: it must be >= 1")
    if args.fuse is not None and args.fuse < 1:
        raise UserError(f"--fuse {args.fuse} is invalid: it must be >= 1 (1 trains every trial alone)")
    if args.workers is not None and args.workers < 1:
        raise UserError(f"--workers {args.workers} is invalid: it must be >= 1")
    if args.timeout is not None and not 0 < args.timeout < float("inf"):
        raise UserError(f"--timeout {args.timeout} is invalid: it must be a number of seconds > 0")
    devices = args.devices.split(",") if args.devices else None
    for device in devices or []:
        Config(device=device)  # checks the name
    options = runner.Options(storage=args.storage, study_name=args.study_name, trials=args.trials,
                             compute=budget.parse(args.budget) if args.budget else None, timeout=args.timeout,
                             seed=args.seed or 0, workers=args.workers, devices=devices, force=args.force, fuse=args.fuse)
    study = runner.run(space, _fixed(args, space.defaults.declared_dict()), options, console=console)
    console.print(top_trials_table(study))
    url = args.storage or urls.default_url(space.name)
    # optuna-dashboard opens database URLs only; ours opens a proxy too
    console.print(f"browse it: {'python -m study dashboard' if urls.grpc_address(url) else 'optuna-dashboard'} {url}")


def _ablation_path(args: argparse.Namespace, console: Console) -> None:
    from study.search import recovery
    from study.workflows.ablation_path import ablation_path

    recovery.handle_stop_signals()

    if args.seeds is not None and args.seeds < 1:
        raise UserError(f"--seeds {args.seeds} is invalid: it must be >= 1")
    url = urls.existing_url(args.storage)
    ablation_path(url, args.study_name, _fixed(args), args.seeds, console)


def _test_score(args: argparse.Namespace, console: Console) -> None:
    from study.search import recovery
    from study.workflows.test_score import test_score

    recovery.handle_stop_signals()

    for flag in ("top", "seeds"):
        if getattr(args, flag) is not None and getattr(args, flag) < 1:
            raise UserError(f"--{flag} {getattr(args, flag)} is invalid: it must be >= 1")
    url = urls.existing_url(args.storage)
    test_score(url, args.study_name, _fixed(args), args.top, args.seeds, console)


def _spaces(args: argparse.Namespace, console: Console) -> None:
    from rich.table import Table

    table = Table(title="spaces/")
    for col in ("space", "kind", "budget", "description"):
        table.add_column(col, overflow="fold")
    for path in sorted(Path("spaces").glob("*.py")):
        try:
            space = spaces.load(path)
        except UserError as exc:
            table.add_row(path.name, "error", "", str(exc))
            continue
        table.add_row(path.stem, space.kind.name, space.kind.size(space.defaults.epochs), space.summary)
    console.print(table)


def _storage_proxy(args: argparse.Namespace, console: Console) -> None:
    url = urls.url(args.storage)
    if urls.sqlite_path(url) is not None:
        urls.existing_url(args.storage)  # a proxy serves a study database; it does not make one up
    where = f"grpc://{args.host}:{args.port}"

    def ready() -> None:
        print(f"warning: the storage proxy at {where} is unauthenticated: whoever reaches the port can read and change "
              "every study in the database; keep it on 127.0.0.1 or a private network", file=sys.stderr, flush=True)
        print(f"storage proxy for {urls.redacted(url)} listening on {where} ({args.threads} threads, at most "
              f"{args.threads} database connections); workers pass --storage {where}; Ctrl-C stops it", flush=True)

    try:
        serve_proxy(url, args.host, args.port, args.threads, ready=ready)
    except KeyboardInterrupt:
        print("storage proxy stopped", file=sys.stderr)


def _report(args: argparse.Namespace, console: Console) -> None:
    from reports import cli as reports_cli

    reports_cli.main(args)


def _dashboard(args: argparse.Namespace, console: Console) -> None:
    from reports import cli as reports_cli

    reports_cli.dashboard(args)


def _bench(args: argparse.Namespace, console: Console) -> None:
    from study.bench import speed as bench

    bench.main(args)


def _train(args: argparse.Namespace, console: Console) -> None:
    from study.engine.results import Callbacks
    from study.engine.train import train

    space = spaces.load(args.space)
    config = space.defaults.replace(**_fixed(args, space.defaults.declared_dict()))
    show = Callbacks(epoch=lambda members: console.print(epoch_line(members[0], config.epochs)))
    metrics = record.as_dict(train(config, show, test=args.test))
    if args.json:
        print(json.dumps(metrics))
    else:  # the single figures; curves, matrices and the configuration are in --json
        console.print({k: v for k, v in metrics.items() if not isinstance(v, (list, dict))})


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parser(argv[0] if argv else None).parse_args(argv)
    console = make_console(stderr=args.command == "train" and getattr(args, "json", False), plain=getattr(args, "plain", False))
    try:
        {"run": _run, "train": _train, "ablation-path": _ablation_path, "spaces": _spaces,
         "report": _report, "dashboard": _dashboard, "bench": _bench, "test-score": _test_score,
         "final": _test_score,
         "storage-proxy": _storage_proxy}[args.command](args, console)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except RuntimeError as exc:
        if not out_of_memory(exc):
            raise
        where = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"error: out of memory ({where[:200]}); lower batch_size, width or resolution with --set", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        what = "terminated (SIGTERM)" if isinstance(exc, Terminated) else "interrupted"
        marked = getattr(exc, "marked", None)  # set where a trial was running (study/search/trial.py)
        if marked:
            said = f"trial {', '.join(map(str, marked))} {'is' if len(marked) == 1 else 'are'} marked interrupted"
            print(f"{what}: {said}; run the same command to resume", file=sys.stderr)
        elif args.command in ("run", "test-score", "final", "ablation-path"):  # no trial of this process was running
            print(f"{what}: run the same command to resume", file=sys.stderr)
        else:
            print(what, file=sys.stderr)
        return 143 if isinstance(exc, Terminated) else 130
    return 0

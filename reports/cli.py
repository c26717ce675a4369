"""`python -m study report ...` and `python -m study dashboard ...`: argument parsing and the two entry points."""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import socket
import sys
from pathlib import Path
from typing import Iterator

from study.errors import UserError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("storages", nargs="+", metavar="STORAGE",
                        help="study database (.db), SQLAlchemy URL (sqlite:///..., postgresql://...) or journal file")
    parser.add_argument("-o", "--output", default="report.html", help="HTML file to write (default report.html); "
                        "the tables go beside it in <name>_tables/")
    parser.add_argument("--study", action="append", metavar="NAME", help="report only this study (repeatable)")
    parser.add_argument("--tables-only", action="store_true", help="write the CSV/Markdown/LaTeX tables, not the HTML")
    parser.add_argument("--save-to-dashboard", action="store_true",
                        help="also save the figures and a summary note (replacing the study's note) into the studies "
                             "for optuna-dashboard; without it the storages are only read")
    parser.add_argument("--no-dashboard", action="store_true", help=argparse.SUPPRESS)  # the default; older scripts pass it
    parser.add_argument("--min-effect", type=float, metavar="PP",
                        help="smallest accuracy difference worth detecting, in percentage points (default: "
                             "reports.ablation.MIN_EFFECT, 1 pp): the ablation table's 'seeds needed' is the seed "
                             "count that finds it with 80%% power")


def main(args: argparse.Namespace) -> None:
    # imported here: plotly and pandas would slow every `study` command
    from reports import ablation, export, page, sections, sources
    from reports import dashboard as dash

    output = Path(args.output)
    if output.suffix.lower() not in (".html", ".htm"):
        raise UserError(f"-o {args.output}: the report is an HTML file; give a name ending in .html")
    if args.min_effect is not None and not 0 < args.min_effect < 100:
        raise UserError(f"--min-effect {args.min_effect:g}: give the smallest difference worth detecting in percentage "
                        "points, above 0 and below 100 (e.g. --min-effect 1)")
    folder = output.with_name(f"{output.stem}_tables")
    with _one_line(output):  # a name too long for the file system
        _check_writable(output, folder)
    items = sources.load(args.storages, args.study)
    built = sections.build(items, min_effect=ablation.MIN_EFFECT if args.min_effect is None else args.min_effect / 100)
    with _one_line(output):
        written = export.write(built, folder)
    print(f"{len(written) // 3} tables written to {folder}/ (CSV, Markdown, LaTeX)")
    if args.tables_only:
        return
    title = f"Study report: {', '.join(i.study.study_name for i in items)}"
    provenance = sections.provenance(items, shlex.join(["python", "-m", "study", *sys.argv[1:]]))
    with _one_line(output):
        export.write_atomically(output, page.render(title, built, provenance))
    print(f"report written to {output}")
    if args.save_to_dashboard and not args.no_dashboard:
        try:
            pushed = dash.push(items, built)
        except Exception as exc:  # a read-only storage still gets its report
            print(f"figures not saved for optuna-dashboard ({type(exc).__name__}: {exc})", file=sys.stderr)
        else:
            print(f"{pushed} figures and a summary note saved into the studies for optuna-dashboard")


@contextlib.contextmanager
def _one_line(output: Path) -> Iterator[None]:
    """A write that fails (a full disk, a name too long) as one line; what was there before stays."""
    try:
        yield
    except OSError as exc:
        raise UserError(f"-o {output}: could not write {exc.filename or output} ({exc.strerror or exc}); "
                        "free disk space or pick another path; files written earlier are unchanged") from None


def _check_writable(output: Path, folder: Path) -> None:
    """Before the (slow) report is built: its folder must be there or creatable, and writable, and
    neither the page nor its tables' folder taken by something else."""
    if output.is_dir():
        raise UserError(f"-o {output} is a folder; give the HTML file to write, e.g. -o {output / 'report.html'}")
    if folder.exists() and not folder.is_dir():
        raise UserError(f"-o {output}: the tables go to {folder}/, but a file has that name; move it or pick another -o")
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"-o {output}: cannot create {output.parent} ({exc.strerror}); pick another path") from None
    if not os.access(output.parent, os.W_OK) or (output.exists() and not os.access(output, os.W_OK)):
        raise UserError(f"-o {output}: {output.parent} is not writable; pick another path")


def _check_port(port: int) -> None:
    from reports.dashboard import HOST

    if not 1 <= port <= 65535:
        raise UserError(f"--port {port} is invalid: a port is between 1 and 65535")
    with socket.socket() as probe:
        try:
            probe.bind((HOST, port))
        except OSError as exc:
            raise UserError(f"--port {port}: cannot listen on {HOST}:{port} ({exc.strerror}); pick another port") from None


def add_dashboard_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("storage", metavar="STORAGE", help="study database (.db), SQLAlchemy URL or journal file")
    parser.add_argument("--port", type=int, default=8080, help="port on 127.0.0.1 (default 8080)")


def dashboard(args: argparse.Namespace) -> None:
    from reports import dashboard as dash
    from reports import sources

    _check_port(args.port)
    dash.serve(sources.open_source(args.storage), args.port)

"""`python -m study report ...` and `python -m study dashboard ...`: argument parsing and the two entry points."""

from __future__ import annotations

import argparse
import os
import shlex
import socket
import sys
from pathlib import Path

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


def main(args: argparse.Namespace) -> None:
    from reports import dashboard as dash  # imported here: plotly and pandas would slow every `study` command
    from reports import export, page, sections, sources

    output = Path(args.output)
    if output.suffix.lower() not in (".html", ".htm"):
        raise UserError(f"-o {args.output}: the report is an HTML file; give a name ending in .html")
    _check_writable(output)
    items = sources.load(args.storages, args.study)
    built = sections.build(items)
    folder = output.with_name(f"{output.stem}_tables")
    written = export.write(built, folder)
    print(f"{len(written) // 3} tables written to {folder}/ (CSV, Markdown, LaTeX)")
    if args.tables_only:
        return
    title = f"Study report: {', '.join(i.study.study_name for i in items)}"
    provenance = sections.provenance(items, shlex.join(["python", "-m", "study", *sys.argv[1:]]))
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(page.render(title, built, provenance), encoding="utf-8")
    print(f"report written to {output}")
    if args.save_to_dashboard and not args.no_dashboard:
        try:
            pushed = dash.push(items, built)
        except Exception as exc:  # a read-only storage still gets its report
            print(f"figures not saved for optuna-dashboard ({type(exc).__name__}: {exc})", file=sys.stderr)
        else:
            print(f"{pushed} figures and a summary note saved into the studies for optuna-dashboard")


def _check_writable(output: Path) -> None:
    """Before the (slow) report is built: its folder must be there or creatable, and writable."""
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

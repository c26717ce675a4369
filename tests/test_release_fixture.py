"""A study database written by the 2026-11 release still opens and reports the same tables.

tests/fixtures/release/studies.sql is the SQL dump (sqlite3 `iterdump`) of the database that release's
code (commit e01d889) wrote by these commands; a study database is an output, so git keeps its text:

    run spaces/naivenet32_cifar10.py --trials 3 --epochs 2 --set data_fraction=0.1
    run spaces/stage3_modern.py --epochs 1 --set data_fraction=0.05
    run spaces/stage2_scaling.py --epochs 1 --set data_fraction=0.05 --set width=1.0
    ablation-path studies.db --study-name naivenet32_cifar10 --seeds 2
    final studies.db --study-name naivenet32_cifar10 --top 2 --seeds 2

and tables/ holds the CSV tables that release's `report --tables-only` wrote from it, except two whose
figures that release got wrong and which hold today's (docs/statistics.md): stage3_modern-ablation.csv
(its t intervals sat beside sign-flip p, its tied arm stood outside Holm's family, its seeds needed came
from the observed deltas) and stage2_scaling-baselines.csv (four depths were averaged into one row).
"""

from __future__ import annotations

import argparse
import contextlib
import sqlite3
from pathlib import Path

import pandas as pd
import pytest

from reports import cli

FIXTURE = Path(__file__).parent / "fixtures" / "release"


def test_a_database_of_the_previous_release_reports_the_same_tables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "studies.db"  # rebuilt each time: the report saves its figures into the studies
    with contextlib.closing(sqlite3.connect(db)) as connection:
        connection.executescript((FIXTURE / "studies.sql").read_text())
    monkeypatch.chdir(tmp_path)
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    cli.main(parser.parse_args([str(db), "--tables-only", "--no-dashboard"]))
    expected = sorted(p.name for p in (FIXTURE / "tables").glob("*.csv"))
    assert sorted(p.name for p in (tmp_path / "report_tables").glob("*.csv")) == expected
    for name in expected:
        got, want = pd.read_csv(tmp_path / "report_tables" / name), pd.read_csv(FIXTURE / "tables" / name)
        pd.testing.assert_frame_equal(got, want, check_exact=False, rtol=1e-9, obj=name)

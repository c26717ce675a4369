"""The whole report from stored studies: sections, escaping, empty and failed studies, tables on disk, a real browser."""

from __future__ import annotations

import argparse
import re
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import optuna
import optuna_dashboard
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState
from stored_studies import ablation_study, add, comparison_study, factorial_study, final_study, new_study, path_study

from reports import cli, sections, sources
from study.bench.importance import synthetic_trials
from study.errors import UserError
from study.store import record

ROOT = Path(__file__).resolve().parents[1]
EVIL = "<script>alert(1)</script>"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
NO_CHROMIUM = "chromium is not installed (apt-get install -y chromium); the browser check needs it"


def report(tmp_path: Path, *storages: str, extra: tuple[str, ...] = ()) -> Path:
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    out = tmp_path / "out" / "report.html"
    cli.main(parser.parse_args([*storages, "-o", str(out), *extra]))
    return out


def evil_study(storage: str) -> None:
    """A study whose name, description and parameter values are HTML."""
    study = new_study(EVIL, storage, description="<img src=x onerror=alert(2)> is a description")
    choices = ("<b>bold</b>", "plain")
    for i, (choice, lr) in enumerate([(choices[0], 0.1), (choices[1], 0.01), (choices[0], 0.05)]):
        study.add_trial(optuna.trial.create_trial(
            value=0.5 + i / 10, params={"se": choice, "lr": lr},
            distributions={"se": CategoricalDistribution(choices), "lr": FloatDistribution(1e-3, 1.0, log=True)},
            intermediate_values={1: 0.4, 2: 0.5 + i / 10}, user_attrs=record.trial_attrs(reference=i == 0, device="cpu"),
        ))


def synthetic_db(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'synthetic.db'}"
    for make in (ablation_study, factorial_study, path_study, comparison_study, final_study):
        make(url)
    evil_study(url)
    new_study("empty", url)
    failed = new_study("all-failed", url)
    add(failed, None, TrialState.FAIL, fail_reason="OutOfMemoryError: CUDA out of memory")
    return str(tmp_path / "synthetic.db")


def test_report_escapes_user_strings_and_embeds_plotly_once(tmp_path):
    html = report(tmp_path, synthetic_db(tmp_path), extra=("--no-dashboard",)).read_text()
    assert "<script>alert(1)" not in html and "<img src=x" not in html and "<b>bold</b>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert not re.search(r"<script[^>]*\bsrc=", html)  # nothing loaded from anywhere, let alone http(s)
    assert html.count("* plotly.js v") == 1  # the bundle, embedded once


def test_empty_and_failed_studies_are_reported_not_raised(tmp_path):
    html = report(tmp_path, synthetic_db(tmp_path), extra=("--no-dashboard",)).read_text()
    assert "Study empty has no trials yet." in html
    assert "All 1 trials of all-failed failed (OutOfMemoryError: CUDA out of memory)." in html


def test_every_section_is_present_with_its_tables(tmp_path):
    built = sections.build(sources.load([synthetic_db(tmp_path)]))
    assert [s.title for s in built] == ["Overview", "Search", "Ablation", "Baselines", "Final test", "Diagnostics"]
    names = {(p.study, getattr(i, "name", None)) for s in built for p in s.parts for i in p.items}
    for expected in [("ablation", "ablation"), ("factorial", "interactions"), ("search-ablation-path", "ablation_path"),
                     ("search-ablation-path", "ablation_path"), ("baselines", "baselines"),
                     ("baselines", "data_requirements"), ("baselines-final", "final"),
                     (EVIL, "reference_vs_best"), ("ablation", "per_class"), ("ablation", "forest")]:
        assert expected in names
    left_out = dict(built[5].left_out)
    assert "not recorded for trial" in left_out["ablation: gradient norms"]
    assert dict(built[1].left_out)[f"{EVIL}: parameter importances"].startswith("withheld: 3 completed trial(s)")


def test_tables_only_writes_csv_markdown_latex_and_no_html(tmp_path):
    out = report(tmp_path, synthetic_db(tmp_path), extra=("--tables-only", "--study", "ablation"))
    assert not out.exists()
    folder = out.with_name("report_tables")
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        f"{stem}.{ext}" for stem in ("overview", "ablation-ablation", "ablation-per_class") for ext in ("csv", "md", "tex"))
    tex = (folder / "ablation-ablation.tex").read_text()
    assert "\\toprule" in tex and "\\midrule" in tex and "\\bottomrule" in tex and "62.00 ± 2.65" in tex
    assert re.search(r"\| no se +\| 3 +\| 62.00 ± 2.65 +\|", (folder / "ablation-ablation.md").read_text())
    assert "0.62" in (folder / "ablation-ablation.csv").read_text()


def test_figures_and_note_are_saved_for_the_dashboard(tmp_path):
    db = synthetic_db(tmp_path)
    report(tmp_path, db, extra=("--study", "ablation", "--save-to-dashboard"))
    storage = optuna.storages.RDBStorage(f"sqlite:///{db}")
    study = optuna.load_study(study_name="ablation", storage=storage)
    attrs = storage.get_study_system_attrs(study._study_id)
    graphs = {k.split(":")[2] for k in attrs if k.startswith("dashboard:plot_data:")}
    assert {"report-ablation-ablation", "report-diagnostics-confusion"} <= graphs
    note = optuna_dashboard.get_note(study)
    assert "Report summary" in note and "62.00 ± 2.65" in note


def test_bad_inputs_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="no such file"):
        sources.load([str(tmp_path / "missing.db")])
    with pytest.raises(UserError, match="--study nope: not found; the storages hold: ablation"):
        ablation_study(f"sqlite:///{tmp_path / 'a.db'}")
        sources.load([str(tmp_path / "a.db")], ["nope"])
    (tmp_path / "junk.txt").write_text("not a study")
    with pytest.raises(UserError):
        sources.load([str(tmp_path / "junk.txt")])
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("create table t (x)")
    with pytest.raises(UserError, match="cannot open storage .*other.db"):
        sources.load([str(other)])
    assert sqlite3.connect(other).execute("select name from sqlite_master").fetchall() == [("t",)]  # left as it was


def test_journal_file_storage(tmp_path):
    journal = tmp_path / "study.log"
    storage = optuna.storages.journal.JournalStorage(optuna.storages.journal.JournalFileBackend(str(journal)))
    ablation_study(storage)
    html = report(tmp_path, str(journal), extra=("--no-dashboard",)).read_text()
    assert "62.00 ± 2.65" in html


@pytest.fixture(scope="module")
def real_search(data_dir, tmp_path_factory) -> str:
    """A small real search on the shared subset: 3 trials of 2 epochs on a fifth of the data."""
    db = tmp_path_factory.mktemp("real") / "search.db"
    subprocess.run(
        [sys.executable, "-m", "study", "run", "spaces/naivenet32_cifar10.py", "--data-dir", data_dir, "--trials", "3",
         "--epochs", "2", "--set", "data_fraction=0.2", "--storage", f"sqlite:///{db}"],
        cwd=ROOT, check=True, capture_output=True, timeout=900,
    )
    return str(db)


def chromium(page: Path, profile: Path, width: int = 1400) -> subprocess.CompletedProcess:
    """The page in headless Chromium at `width` px, after its scripts ran: the DOM on stdout, the console on stderr."""
    return subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", "--disable-sync", f"--user-data-dir={profile}",
         f"--window-size={width},900", "--enable-logging=stderr", "--v=0", "--virtual-time-budget=20000",
         "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=180,
    )


@pytest.mark.skipif(CHROMIUM is None, reason=NO_CHROMIUM)
def test_report_opens_in_headless_chromium(real_search, tmp_path):
    out = report(tmp_path, real_search, synthetic_db(tmp_path), extra=("--no-dashboard",))
    html = out.read_text()
    result = chromium(out, tmp_path / "profile")
    dom = result.stdout
    console = [line for line in result.stderr.splitlines() if "CONSOLE" in line]
    assert not [line for line in console if "Uncaught" in line or "Error" in line], console
    figures = re.findall(r'<div id="(fig-[^"]+)"', html)
    assert len(figures) >= 15  # search, ablation, path, baselines and diagnostics figures
    # plotly draws each figure as SVG inside its div: every figure div holds a main-svg in the DOM
    drawn = re.split(r'<div id="(fig-[^"]+)"', dom)
    svg_by_figure = {drawn[i]: 'class="main-svg"' in drawn[i + 1] for i in range(1, len(drawn), 2)}
    assert set(svg_by_figure) == set(figures) and all(svg_by_figure.values())
    assert "<h3>&lt;script&gt;alert(1)&lt;/script&gt;</h3>" in dom  # shown as text, not run
    study = optuna.load_study(study_name="naivenet32_cifar10", storage=f"sqlite:///{real_search}")
    best = max((t for t in study.trials if t.state == TrialState.COMPLETE), key=lambda t: t.value)
    assert f"<td>{100 * best.value:.2f}</td>" in dom  # the stored accuracy, in the top-trials table
    assert f"{record.trial_info(best).train_images:,} train" in dom
    assert "<td>python -m study run spaces/naivenet32_cifar10.py --data-dir" in dom  # the command as typed
    assert "__main__.py" not in dom


MEASURE = """<script>
window.addEventListener("load", () => setTimeout(() => {
  const right = Math.max(0, ...[...document.querySelectorAll(".main-svg")].map(e => e.getBoundingClientRect().right));
  document.body.dataset.widths = [document.documentElement.scrollWidth, window.innerWidth, Math.ceil(right)].join(",");
}, 3000));
</script>"""


@pytest.mark.skipif(CHROMIUM is None, reason=NO_CHROMIUM)
def test_report_fits_a_1400_px_window(tmp_path):
    """No horizontal scrollbar and no figure cut off: a six-parameter search's slices, wide ablation tables."""
    db = synthetic_db(tmp_path)
    search = optuna.create_study(study_name="six-parameters", storage=f"sqlite:///{db}", direction="maximize")
    search.add_trials(synthetic_trials("spaces/naivenet128.py", 40, seed=0))
    out = report(tmp_path, db, extra=("--no-dashboard",))
    out.write_text(out.read_text().replace("</body>", MEASURE + "</body>"))
    dom = chromium(out, tmp_path / "profile").stdout
    found = re.search(r'data-widths="(\d+),(\d+),(\d+)"', dom)
    assert found, "the measuring script did not run"
    scroll_width, inner_width, figure_right = map(int, found.groups())
    assert inner_width == 1400
    assert scroll_width <= inner_width  # document.documentElement.scrollWidth: no horizontal overflow
    assert figure_right <= inner_width  # and no figure drawn past the window's edge


def test_commands_stored_before_they_were_recorded_as_typed_read_as_typed():
    typed = "python -m study run spaces/x.py --trials 3"
    assert sections.as_typed("/work/w9/study/__main__.py run spaces/x.py --trials 3") == typed
    assert sections.as_typed("python -m study run x") == "python -m study run x"

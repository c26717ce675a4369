"""What a running study shows: in a terminal an epoch bar per trial and study counts; elsewhere plain lines.

Redirected to a file or a pipe (CI, nohup, a cluster job), or with --plain, there are no bars and no
colour codes: one full line per finished trial and one per epoch at most every EPOCH_LINE_SECONDS,
on a console wide enough (PLAIN_WIDTH) that no line or table is clipped at rich's default 80 columns.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import optuna
from optuna.trial import TrialState
from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from study.config import fmt_setting
from study.engine.results import Metrics
from study.store import record
from study.store.ranking import top_trials

EPOCH_LINE_SECONDS = 5.0
PLAIN_WIDTH = 400
# light rules only: the heavy line (━) is the progress bar's, so a log without it has no bar left in it
TABLE_BOX = box.SIMPLE


def make_console(stderr: bool = False, plain: bool = False) -> Console:
    """The live display's console in a terminal; a plain one (no bars, no colour, wide) anywhere else or when asked."""
    stream = sys.stderr if stderr else sys.stdout
    if plain or not stream.isatty():
        return Console(stderr=stderr, force_terminal=False, no_color=True, width=PLAIN_WIDTH, soft_wrap=True)
    return Console(stderr=stderr)


class StudyProgress:
    """Live bars while a study runs in a terminal, plain lines otherwise; also an Optuna callback after each trial."""

    def __init__(self, console: Console, budget: int, done: int, live: bool = True, prefix: str = "",
                 metric: str = "val_acc") -> None:
        # parallel workers (live=False) and plain consoles print lines instead of drawing bars
        self.console, self.live, self.prefix = console, live and console.is_terminal, prefix
        self.metric = metric  # what a trial's value is: validation accuracy, or test accuracy (final scoring)
        self.last_line = time.monotonic()
        self.trial_number = -1
        self.bars = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), TimeRemainingColumn(), console=console, transient=False,
        )
        self.study_task = self.bars.add_task(self._study_text(0, 0, 0, None), total=budget, completed=done)
        self.trial_task: Any = None

    @staticmethod
    def _study_text(complete: int, pruned: int, failed: int, best: float | None) -> str:
        best_text = f"{best:.4f}" if best is not None else "-"
        return f"study  complete {complete} pruned {pruned} failed {failed}  best {best_text}"

    def __enter__(self) -> StudyProgress:
        if self.live:  # parallel workers print one line per trial instead of fighting over the bars
            self.bars.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.bars.stop()

    def start_trial(self, number: int, epochs: int) -> None:
        if self.trial_task is not None:
            self.bars.remove_task(self.trial_task)
        self.trial_task = self.bars.add_task(f"trial {number:<4} epoch 1/{epochs}", total=None)
        self._epochs, self.trial_number = epochs, number

    def on_step(self, epoch: int, step: int, steps: int) -> None:
        self.bars.update(self.trial_task, total=self._epochs * steps, completed=epoch * steps + step + 1)

    def on_epoch(self, metrics: Metrics) -> None:
        if not metrics.train_loss_curve:  # a fused array's first member diverged in its first epoch
            return
        text = epoch_line(metrics, self._epochs)
        if self.live:
            self.bars.update(self.trial_task, description=f"trial {text}")
        elif time.monotonic() - self.last_line >= EPOCH_LINE_SECONDS:
            self._line(f"trial {self.trial_number} {text}")

    def _line(self, text: str) -> None:
        self.console.print(f"{self.prefix}{text}", highlight=False)
        self.last_line = time.monotonic()

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        trials = study.get_trials(deepcopy=False)
        count = {s: sum(t.state == s for t in trials) for s in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)}
        values = [t.value for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
        best = max(values) if values else None
        self.bars.update(
            self.study_task, completed=count[TrialState.COMPLETE] + count[TrialState.PRUNED],
            description=self._study_text(count[TrialState.COMPLETE], count[TrialState.PRUNED], count[TrialState.FAIL], best),
        )
        value = "-" if trial.value is None else f"{trial.value:.4f}"
        params = " ".join(f"{k}={fmt_setting(v)}" for k, v in trial.params.items())
        reason = record.trial_info(trial).fail_reason or ""
        self._line(f"trial {trial.number} {trial.state.name.lower():8} {self.metric} {value}  {params}  {reason}".rstrip())


def top_trials_table(study: optuna.Study, n: int = 10) -> Table:
    rows = top_trials(study, n, pruned=True)
    names = list(rows[0]["params"]) if rows else []
    table = Table(title=f"top trials of {study.study_name}", box=TABLE_BOX)
    for col in ["#", "state", "val_acc", "epochs", "params", "img/s", *names]:
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(
            str(r["trial"]), r["state"], f"{r['val_accuracy']:.4f}", "" if r["epochs"] is None else str(r["epochs"]),
            f"{r['model_params'] or 0:,}", f"{r['images_per_second'] or 0:.0f}", *map(fmt_setting, r["params"].values()),
        )
    return table


def epoch_line(metrics: Metrics, epochs: int) -> str:
    return (f"epoch {metrics.epochs_trained}/{epochs}  loss {metrics.train_loss_curve[-1]:.3f}  "
            f"val_acc {metrics.val_accuracy:.4f}  {metrics.images_per_second:.0f} img/s")

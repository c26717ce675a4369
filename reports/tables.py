"""What every table shares: raw numbers for CSV beside formatted text for the page and the paper."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import optuna
import pandas as pd
from optuna.trial import TrialState

from reports.power import MAX_SEEDS
from study.config import fmt_setting
from study.store import record
from study.store.record import TrialInfo

MISSING = "–"


@dataclass(frozen=True)
class Table:
    """`data` keeps full-precision numbers (written as CSV); `shown` is the same table as formatted text."""

    name: str  # file name stem, unique within a study
    title: str
    data: pd.DataFrame
    shown: pd.DataFrame


def complete(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if t.value is not None]


def best(study: optuna.Study) -> optuna.trial.FrozenTrial | None:
    done = complete(study)
    return max(done, key=lambda t: t.value) if done else None


def devices(study: optuna.Study) -> str:
    """The devices the study's trials ran on."""
    found = {record.trial_info(t).device for t in study.get_trials(deepcopy=False)}
    return ", ".join(sorted(str(d) for d in found if d is not None)) or "not recorded"


def recorded(trials: list[optuna.trial.FrozenTrial], field: Callable[[TrialInfo], Any]) -> list[Any]:
    """`field` of each trial's stored attributes (`lambda i: i.seconds`), where the trial recorded it."""
    values = (field(record.trial_info(t)) for t in trials)
    return [v for v in values if v is not None]


def mean(trials: list[optuna.trial.FrozenTrial], field: Callable[[TrialInfo], Any]) -> float:
    """The mean of `field` over the trials that recorded it; NaN where none did."""
    values = recorded(trials, field)
    return float(np.mean(values)) if values else float("nan")


def missing(x: Any) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def pct(x: Any, signed: bool = False) -> str:
    """A fraction as a percentage with two decimals."""
    return MISSING if missing(x) else f"{100 * x:{'+' if signed else ''}.2f}"


def pm(mean: Any, std: Any) -> str:
    """mean ± std in percent; a single seed has no spread."""
    if missing(mean):
        return MISSING
    return pct(mean) if missing(std) else f"{pct(mean)} ± {pct(std)}"


def pm_number(mean: Any, std: Any, digits: int = 2) -> str:
    """mean ± std of a plain number (an importance, a share) at fixed decimals."""
    if missing(mean):
        return MISSING
    return f"{mean:.{digits}f}" if missing(std) else f"{mean:.{digits}f} ± {std:.{digits}f}"


def _end(x: float) -> str:
    return ("+∞" if x > 0 else "−∞") if math.isinf(x) else pct(x, True)


def ci(delta: Any, low: Any, high: Any) -> str:
    """A difference in pp with its interval; an unbounded end (a test too weak to reject any shift) reads ∞."""
    if missing(delta):
        return MISSING
    return pct(delta, True) if missing(low) else f"{pct(delta, True)} [{_end(low)}, {_end(high)}]"


def ci_only(low: Any, high: Any) -> str:
    """An interval in pp: "[-1.20, +0.40]", "[−∞, +∞]" where the test rejects no shift, "–" where there is none."""
    return MISSING if missing(low) or missing(high) else f"[{_end(low)}, {_end(high)}]"


def share_ci(x: Any, low: Any, high: Any) -> str:
    """A probability with its interval: "0.83 [0.50, 1.00]"."""
    if missing(x):
        return MISSING
    return f"{x:.2f}" if missing(low) else f"{x:.2f} [{low:.2f}, {high:.2f}]"


def count(x: Any) -> str:
    """Parameters or FLOPs with an SI prefix and three significant figures (99.5k, 44.6M, 1.20G)."""
    if missing(x):
        return MISSING
    for scale, prefix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= scale:
            return f"{x / scale:.3g}{prefix}"
    return f"{x:.0f}"


def number(x: Any) -> str:
    """A setting or count as the user would write it: integers with separators, floats at 3 significant digits."""
    if missing(x):
        return MISSING
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return str(x)
    return f"{x:,}" if isinstance(x, int) else fmt_setting(x)


def pvalue(p: Any) -> str:
    return MISSING if missing(p) else ("< 0.001" if p < 1e-3 else f"{p:.3f}")


def seconds(x: Any) -> str:
    if missing(x):
        return MISSING
    return f"{x / 3600:.1f} h" if x >= 3600 else (f"{x / 60:.1f} min" if x >= 60 else f"{x:.1f} s")


def seeds_text(n: Any) -> str:
    """Seeds needed: a count, "> MAX_SEEDS" when no feasible number does, "–" when there is no spread to go on."""
    if missing(n):
        return MISSING
    return f"> {MAX_SEEDS:,}" if math.isinf(n) else f"{n:.0f}"

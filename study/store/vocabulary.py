"""The values a study stores, where they come from a fixed set: study kinds, why a trial failed or
stopped, the label of a fused array, derived studies' names, an ablation path's infinite CI ends.

Enums are str-Enums, so what is stored is the plain string (`record` writes `.value`), and studies of
earlier releases read the same.
"""

from __future__ import annotations

import math
from enum import Enum


class StudyKind(str, Enum):
    """`StudyInfo.kind`: a space's kind, or a study derived from another."""

    SEARCH = "search"
    ABLATION = "ablation"
    COMPARISON = "comparison"
    ABLATION_PATH = "ablation_path"
    FINAL = "final"


class StoppedBy(str, Enum):
    """`TrialInfo.stopped_by`: what cut a pruned trial short other than its pruner."""

    BUDGET = "budget"  # the compute budget had no epoch left for it


class Derived(str, Enum):
    """The suffix of a study that a command derives from a search and stores beside it."""

    ABLATION_PATH = "-ablation-path"
    FINAL = "-final"

    def name_for(self, source: str) -> str:
        return source + self.value


DERIVED_SUFFIXES = tuple(d.value for d in Derived)

# `TrialInfo.fail_reason`: free text, but these are read back. A trial that failed through no fault
# of its configuration (interrupted, or its environment: device, disk) is re-queued by the next run.
INTERRUPTED = "interrupted"
ENVIRONMENT = "environment: "
SUGGEST_FAILED = "suggest() failed"
# fail_reason prefix of a grid trial that trained nothing because its cell is another trial's (nodes that
# start at once may queue a cell twice), or because it was asked when no cell was left in the queue:
# it spent no compute, so reports do not count it as failed and recovery never re-queues it
STEPPED_ASIDE = "stepped aside: "


def environment(message: str) -> str:
    return ENVIRONMENT + message


def diverged(reason: str) -> str:
    return f"Diverged: {reason}"


def out_of_memory(message: str) -> str:
    return f"OutOfMemoryError: {message}"


def suggest_failed(what: str) -> str:
    """The space's `suggest` raised, or returned invalid settings (`what` says which)."""
    return f"suggest() {what}"


def requeued(reason: str | None) -> bool:
    """Whether a trial that failed with `reason` is the environment's to retry, not its configuration's."""
    return reason == INTERRUPTED or (reason or "").startswith(ENVIRONMENT)


def array_label(first: int, size: int) -> str:
    """`TrialInfo.array`: the fused array a trial trained in, its first member's number and K."""
    return f"{first}x{size}"


# An ablation path step's CI end: JSON has no infinity, so an infinite end is stored as text.
INF, NEG_INF = "inf", "-inf"


def ci_end(x: float) -> float | str | None:
    """A CI end as stored: NaN as None, an infinite end as INF / NEG_INF."""
    if x != x:
        return None
    if math.isinf(x):
        return INF if x > 0 else NEG_INF
    return float(x)


def read_ci_end(x: float | str | None) -> float:
    """A stored CI end as a number (none: NaN)."""
    return math.nan if x is None else float(x)


class Design(str, Enum):
    """`StudyInfo.design`: how an ablation knocks its components out."""

    ONE_OUT = "one_out"  # the full model, and each component removed
    ADD_ONE = "add_one"  # the bare model, and each component added
    FACTORIAL = "factorial"  # every combination

    def reference_variant(self) -> str:
        """The stored name of the variant every other one is compared with."""
        return "bare" if self is Design.ADD_ONE else "full"

    def variant_name(self, on: list[str], names: list[str]) -> str:
        """The stored name of the variant with components `on`, of all `names`."""
        if len(on) == len(names) and self is not Design.ADD_ONE:
            return "full"
        if self is Design.ONE_OUT:
            return f"no {next(n for n in names if n not in on)}"
        if self is Design.ADD_ONE:
            return "bare" if not on else f"only {on[0]}"
        return "+".join(on) or "bare"

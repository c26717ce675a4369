"""The speed bench's figures: one dataclass per kind of row, the JSON `--json` prints, and the table.

The JSON keeps one flat key per row (`naivenet_32`, `naivenet_32_b512`, `fused: naivenet_32_x4`, ...)
for the scripts that read it; the table reads the dataclasses, never those keys.
"""

from __future__ import annotations

import dataclasses
import os
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from rich.table import Table

from study.config import Config


@dataclass(frozen=True)
class Row:
    """A model at a resolution and batch size: the unit the bench measures."""

    model: str
    resolution: int
    batch: int = Config.batch_size

    @property
    def key(self) -> str:
        batch = "" if self.batch == Config.batch_size else f"_b{self.batch}"
        return f"{self.model}_{self.resolution}{batch}"

    @property
    def label(self) -> str:
        batch = "" if self.batch == Config.batch_size else f" batch {self.batch}"
        return f"{self.model} @{self.resolution}{batch}"


@dataclass(frozen=True)
class Throughput:
    """Training images/s of a row, the seed's way and ours; `skipped` says why a row was not measured."""

    row: Row
    seed_way: float = 0.0
    ours: float = 0.0
    skipped: str = ""

    def json(self) -> dict[str, Any]:
        if self.skipped:
            return {"skipped": self.skipped}
        return {"seed_way_images_per_second": self.seed_way, "ours_images_per_second": self.ours,
                "ratio": self.ours / self.seed_way}


@dataclass(frozen=True)
class Fused:
    """Member-images/s of `members` seeds of a row trained as one fused array, beside the row's single trial."""

    row: Row
    members: int
    member_images_per_second: float
    one_trial_images_per_second: float

    def json(self) -> dict[str, Any]:
        return {"members": self.members, "member_images_per_second": self.member_images_per_second,
                "one_trial_images_per_second": self.one_trial_images_per_second,
                "vs_one_trial": self.member_images_per_second / self.one_trial_images_per_second}


@dataclass(frozen=True)
class Concurrent:
    """Images/s of several single trials training at once on one GPU: the sum of each one's median window."""

    trials: int
    images_per_second: float
    per_trial: list[float]


@dataclass(frozen=True)
class Augmentation:
    resolution: int
    images_per_second: float
    share_of_step: float  # of one training step's time at this resolution


@dataclass(frozen=True)
class Overhead:
    share: float  # in trials: sampling, model construction, storage writes; the target (docs/performance.md) is on this share
    seconds_per_trial: float
    mean_trial_seconds: float
    # once per study: imports, storage creation, the reference trial's queueing, loading the data set
    study_setup_seconds: float
    share_with_setup: float
    trials: int


@dataclass(frozen=True)
class Machine:
    device: str
    cpus: int | None
    cpu_capability: str
    threads: int
    torch: str
    load_average_at_start: float  # > 0.5 or so: the machine was shared, numbers are low


def _cpu_name() -> str:
    cpuinfo = Path("/proc/cpuinfo")  # Linux; platform.processor() says only "x86_64" there
    lines = cpuinfo.read_text().splitlines() if cpuinfo.is_file() else []
    names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    return names[0] if names else platform.processor() or platform.machine()


def machine(device: torch.device) -> Machine:
    return Machine(torch.cuda.get_device_name(device) if device.type == "cuda" else _cpu_name(), os.cpu_count(),
                   torch.backends.cpu.get_cpu_capability(), torch.get_num_threads(), torch.__version__,
                   os.getloadavg()[0])


@dataclass
class SpeedResult:
    """Every figure of one speed bench run; the parts a run left out (`--only fused`) stay empty."""

    machine: Machine
    throughput: list[Throughput] = field(default_factory=list)
    fused: list[Fused] = field(default_factory=list)
    concurrent: Concurrent | None = None
    augmentation: list[Augmentation] = field(default_factory=list)
    overhead: Overhead | None = None

    def ours(self, row: Row) -> float | None:
        """Our single-trial images/s of `row`, where this run measured it."""
        return next((t.ours for t in self.throughput if t.row == row and not t.skipped), None)

    def json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"machine": dataclasses.asdict(self.machine)}
        out |= {t.row.key: t.json() for t in self.throughput}
        if self.fused:
            out["fused"] = {f"{f.row.key}_x{f.members}": f.json() for f in self.fused}
        if self.concurrent:
            out["trials_per_gpu"] = dataclasses.asdict(self.concurrent)
        if self.augmentation:
            out["augmentation"] = {f"augment_{a.resolution}": {"images_per_second": a.images_per_second,
                                                               "share_of_step": a.share_of_step}
                                   for a in self.augmentation}
        if self.overhead:
            out["overhead"] = dataclasses.asdict(self.overhead)
        return out


def table(result: SpeedResult) -> Table:
    t = Table(title=f"study bench on {result.machine.device} ({result.machine.threads} threads)")
    for col in ("figure", "seed's way", "ours", "ratio"):
        t.add_column(col, justify="right")
    for row in result.throughput:
        name = f"{row.row.label} train img/s"
        if row.skipped:
            t.add_row(name, "-", "-", row.skipped)
        else:
            t.add_row(name, f"{row.seed_way:,.0f}", f"{row.ours:,.0f}", f"{row.ours / row.seed_way:.1f}x")
    for f in result.fused:
        t.add_row(f"{f.row.model} @{f.row.resolution} fused x{f.members} img/s", "", f"{f.member_images_per_second:,.0f}",
                  f"{f.member_images_per_second / f.one_trial_images_per_second:.2f}x one trial "
                  f"({f.one_trial_images_per_second:,.0f})")
    if result.concurrent:
        c, one = result.concurrent, result.ours(Row("naivenet", 32))
        t.add_row(f"{c.trials} naivenet @32 trials at once on one GPU, img/s", "", f"{c.images_per_second:,.0f}",
                  f"{c.images_per_second / one:.1f}x one trial" if one else "")
    for a in result.augmentation:
        t.add_row(f"augment_{a.resolution} img/s (share of step)", "", f"{a.images_per_second:,.0f}",
                  f"{a.share_of_step:.1%}")
    if o := result.overhead:
        t.add_row(f"overhead in trials ({o.trials} trials of {o.mean_trial_seconds:.0f} s)", "",
                  f"{o.seconds_per_trial:.2f} s/trial", f"{o.share:.1%}")
        t.add_row("overhead with the study's setup", "", f"{o.study_setup_seconds:.1f} s once",
                  f"{o.share_with_setup:.1%}")
    return t

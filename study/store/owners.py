"""A trial's system attributes: the process that owns it, and its beat through the storage proxy.

Optuna keeps system attributes apart from the user attributes (record.py) that reports read: these
serve the workers alone (study/search/recovery.py, study/store/proxy.py).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import optuna
from optuna.trial import FrozenTrial

from study.store import optuna_internals as internals

OWNER = "owner"  # the process that runs the trial, an Owner
HEARTBEAT = "heartbeat"  # the last beat written through the gRPC storage proxy


@dataclass(frozen=True)
class Owner:
    """The process that runs a trial: `host` is the host name and its boot id (process ids start over
    at a reboot), `process_start` the process's start time in clock ticks since boot (a pid is reused)."""

    host: str
    pid: int
    process_start: int | None
    trial: int  # the trial it owns: a retry copies its original's system attributes, this tells them apart
    started: float


def owner(trial: FrozenTrial) -> Owner | None:
    """Who ran or runs `trial` (None where no worker of ours took it, or it was stored before owners were)."""
    stored = trial.system_attrs.get(OWNER)
    if not stored or stored.get("trial") != trial.number:
        return None
    return Owner(**{k: stored.get(k) for k in Owner.__dataclass_fields__})


def workers_and_hosts(trials: list[FrozenTrial]) -> tuple[int, int]:
    """How many worker processes, and on how many hosts, trained these trials."""
    owners = [o for t in trials if (o := owner(t)) is not None]
    return len({(o.host, o.pid, o.process_start) for o in owners}), len({o.host for o in owners})


def write_owner(study: optuna.Study, trial: optuna.Trial, owner: Owner) -> None:
    """Record `owner` as the trial's (a fused array's members are owned by the process that asked them)."""
    internals.set_trial_system_attr(study, trial, OWNER, dataclasses.asdict(owner))

"""Shared fixtures: the real CIFAR subset beside the project (../shared/data) or $STUDY_DATA_DIR."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("STUDY_DATA_DIR") or ROOT.parent / "shared" / "data")


@pytest.fixture(scope="session")
def data_dir() -> str:
    if not (DATA / "cifar-10-batches-py").is_dir() or not (DATA / "cifar-100-python").is_dir():
        pytest.skip(f"the CIFAR subset is not at {DATA}: put shared/data beside the project or set STUDY_DATA_DIR")
    return str(DATA)


class NoHostSync:
    """`on_epoch` and `on_step` callbacks under which any host sync fails, from the second epoch's start
    (after the first epoch's graph capture) to its last step; `steps_seen` lists each step's epoch."""

    def __init__(self) -> None:
        self.steps_seen: list[int] = []

    def on_epoch(self, metrics) -> None:
        import torch

        first = metrics[0] if isinstance(metrics, list) else metrics  # a fused array's members, or one run's
        if first.epochs_trained == 1:
            torch.cuda.set_sync_debug_mode("error")

    def on_step(self, epoch: int, step: int, steps: int) -> None:
        import torch

        self.steps_seen.append(epoch)
        if step == steps - 1:
            torch.cuda.set_sync_debug_mode("default")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The fast tier (`python -m pytest -m "not slow"`) is what needs no CIFAR images: a test that asks for
    the subset (`data_dir`) trains on it or loads it, so it is slow by this one rule, beside the tests
    marked slow by hand (several processes at once, or a stored study trained through the command line)."""
    for item in items:
        if "data_dir" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)

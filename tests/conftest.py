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


# Modules whose every test builds full-size models, starts processes or renders whole report pages.
SLOW_MODULES = {"test_bad_input", "test_bad_stored", "test_cli", "test_cluster", "test_fused", "test_interrupts",
                "test_reference_models", "test_reports_page", "test_robustness", "test_user_model"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The fast tier (`python -m pytest -m "not slow"`) is what needs no CIFAR images and no process,
    page or full-size model: a test that asks for the subset (`data_dir`) trains on it or loads it, so
    it is slow by this rule, as is every test of SLOW_MODULES."""
    for item in items:
        if "data_dir" in getattr(item, "fixturenames", ()) or item.module.__name__.split(".")[-1] in SLOW_MODULES:
            item.add_marker(pytest.mark.slow)

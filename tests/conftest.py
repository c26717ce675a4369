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

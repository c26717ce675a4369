"""The training step's numbers, pinned: per-step losses of fixed runs on CPU, so any change to what a
step computes shows, bit for bit (a product then a sum in the update instead of a fused multiply-add
moves step 2 by one ulp and step 21 by 0.5%: training amplifies).

The same code gives other last digits on another CPU kind (oneDNN picks kernels by instruction set)
and with another thread count (reductions split by thread), so the reference is kept per CPU kind
(vendor and widest vector unit, `cpu_kind()`) and runs on REFERENCE_THREADS threads. On a kind with
no reference yet the test skips, saying how to record one: `PYTHONPATH=. python
tests/test_train_reference.py` from the repository root records this machine's kind from this
checkout's code; record only from code whose numbers are already pinned on another kind, and say so
in the commit. docs/architecture.md lists where each reference came from.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from study.config import Config
from study.engine.train import train

FIXTURE = Path(__file__).with_name("train_reference.json")
REFERENCE_THREADS = 2  # the CI machine's cores


def cpu_kind() -> str:
    """Vendor and widest vector unit of this CPU, e.g. "AuthenticAMD avx512" or "GenuineIntel amx"."""
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    vendor = next((line.split(":")[1].strip() for line in info.splitlines() if line.startswith("vendor_id")), "unknown")
    flags = set(next((line.split(":")[1].split() for line in info.splitlines() if line.startswith("flags")), []))
    unit = "amx" if "amx_tile" in flags else "avx512" if "avx512f" in flags else "avx2" if "avx2" in flags else "other"
    return f"{vendor} {unit}"
# NaiveNet @32 on CIFAR-10, fp32 on CPU, seed 0: 15 steps of 32 images per epoch, 2 epochs
BASE = {"dataset": "cifar10", "resolution": 32, "data_fraction": 0.1, "batch_size": 32, "epochs": 2, "seed": 0,
        "precision": "fp32", "device": "cpu", "lr": 0.05}
RUNS = {
    "default_augmentation": {"record_grad_norms": True},  # colour jitter with hue, affine, flip
    "mixup_cutout": {"mixup_alpha": 0.4, "cutout": 8.0},
    "cosine": {"schedule": "cosine", "aug_strength": 0.0},
}


def run(name: str, data_dir: str, monkeypatch: pytest.MonkeyPatch) -> dict:
    """Train run `name`; the per-step training losses are caught where the step computes them."""
    losses: list[float] = []
    cross_entropy = F.cross_entropy

    def recording(*args, **kwargs):
        loss = cross_entropy(*args, **kwargs)
        if kwargs.get("reduction", "mean") == "mean":  # evaluation sums
            losses.append(loss.item())
        return loss

    monkeypatch.setattr(F, "cross_entropy", recording)
    threads = torch.get_num_threads()
    torch.set_num_threads(REFERENCE_THREADS)
    try:
        m = train(Config(data_dir=data_dir, **BASE, **RUNS[name]))
    finally:
        torch.set_num_threads(threads)
        monkeypatch.undo()
    out = {"step_losses": losses, "train_loss_curve": m.train_loss_curve, "val_loss_curve": m.val_loss_curve}
    if m.grad_norms is not None:
        out["grad_norm_sums"] = [sum(step) for step in zip(*m.grad_norms.values())]
    return out


@pytest.mark.parametrize("name", RUNS)
def test_step_losses_match_the_reference(name, data_dir, monkeypatch):
    references = json.loads(FIXTURE.read_text())
    if cpu_kind() not in references:
        pytest.skip(f"no reference trajectory for this CPU kind ({cpu_kind()}; recorded: {', '.join(references)}); "
                    "record one as this module's docstring says")
    reference = references[cpu_kind()][name]
    got = run(name, data_dir, monkeypatch)
    assert len(got["step_losses"]) == 30
    for key, values in reference.items():
        assert got[key] == values, key  # bit-for-bit: JSON keeps every digit of a float


if __name__ == "__main__":
    data = sys.argv[1] if len(sys.argv) > 1 else str(Path(__file__).resolve().parents[2] / "shared" / "data")
    references = json.loads(FIXTURE.read_text()) if FIXTURE.exists() else {}
    references[cpu_kind()] = {name: run(name, data, pytest.MonkeyPatch()) for name in RUNS}
    FIXTURE.write_text(json.dumps(references, indent=1) + "\n")

"""The training step's numbers, pinned: per-step losses of fixed runs on CPU, written down from the code
before the step was restructured for CUDA graphs (issue 11), so any change to what a step computes shows.

The reference (tests/train_reference.json) came from commit 45f8e7a, where torch.optim.SGD and
OneCycleLR/CosineAnnealingLR ran the update with a Python-float learning rate. The step now reads lr
and momentum from device tensors precomputed from those schedulers (so a CUDA graph can replay it),
and on CPU the numbers must stay bit-for-bit the same. (A product then a sum in the update, instead of
SGD's fused multiply-add, already moves step 2 by one ulp and step 21 by 0.5%: training amplifies.)
To regenerate after an intended change: `PYTHONPATH=. python tests/test_train_reference.py` from the
repository root (PYTHONPATH: so it runs this checkout's code), and say why in the commit.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch.nn.functional as F

from study.config import Config
from study.engine.train import train

FIXTURE = Path(__file__).with_name("train_reference.json")
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
    m = train(Config(data_dir=data_dir, **BASE, **RUNS[name]))
    monkeypatch.undo()
    out = {"step_losses": losses, "train_loss_curve": m.train_loss_curve, "val_loss_curve": m.val_loss_curve}
    if m.grad_norms is not None:
        out["grad_norm_sums"] = [sum(step) for step in zip(*m.grad_norms.values())]
    return out


@pytest.mark.parametrize("name", RUNS)
def test_step_losses_match_the_reference(name, data_dir, monkeypatch):
    reference = json.loads(FIXTURE.read_text())[name]
    got = run(name, data_dir, monkeypatch)
    assert len(got["step_losses"]) == 30
    for key, values in reference.items():
        assert got[key] == values, key  # bit-for-bit: JSON keeps every digit of a float


if __name__ == "__main__":
    data = sys.argv[1] if len(sys.argv) > 1 else str(Path(__file__).resolve().parents[2] / "shared" / "data")
    FIXTURE.write_text(json.dumps({name: run(name, data, pytest.MonkeyPatch()) for name in RUNS}, indent=1) + "\n")

"""The training step on a GPU: captured as one CUDA graph, the same numbers as eager, no host sync.

Skipped without CUDA. Written without a GPU at hand (issue 11's session had none): run them first
on any GPU machine (`python -m pytest tests/test_train_cuda.py`).
"""

from __future__ import annotations

import optuna
import pytest
import torch
from conftest import NoHostSync

from study.config import Config
from study.engine.results import Callbacks
from study.engine.train import train
from study.search.trial import TrialReports

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def small(data_dir: str, **kw) -> Config:
    # 5 steps of 128 images per epoch
    return Config(dataset="cifar10", resolution=32, data_dir=data_dir, device="cuda", data_fraction=0.14,
                  batch_size=128, lr=0.05, **kw)


def test_graphed_and_eager_steps_give_the_same_losses_over_50_steps(data_dir):
    # no augmentation: inside a graph the random numbers come from other generator offsets than eager
    cfg = small(data_dir, epochs=10, aug_strength=0.0, precision="bf16")
    graphed, eager = train(cfg), train(cfg, cuda_graph=False)
    assert graphed.step_mode == "graph", graphed.step_mode_reason
    assert eager.step_mode == "eager"
    torch.testing.assert_close(torch.tensor(graphed.train_loss_curve), torch.tensor(eager.train_loss_curve),
                               rtol=2e-2, atol=1e-2)  # bf16 keeps 8 bits of mantissa


@pytest.mark.parametrize("extra", [{}, {"mixup_alpha": 0.4, "cutout": 8.0, "record_grad_norms": True}])
def test_a_trial_records_step_mode_graph(data_dir, extra):
    study = optuna.create_study(direction="maximize")
    trial = study.ask()
    train(small(data_dir, epochs=2, **extra), TrialReports([trial]).callbacks())
    attrs = study.trials[0].user_attrs
    assert attrs["step_mode"] == "graph", attrs["step_mode_reason"]
    assert attrs["capture_seconds"] > 0
    if extra:
        assert all(len(norms) == 5 for norms in attrs["grad_norms"].values())


def test_no_host_sync_inside_an_epoch(data_dir):
    watch = NoHostSync()
    try:
        m = train(small(data_dir, epochs=2), Callbacks(step=watch.on_step, epoch=watch.on_epoch))
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert m.step_mode == "graph" and watch.steps_seen.count(1) == 5


def test_a_graphed_run_resumes_from_its_checkpoint(data_dir, tmp_path):
    cfg = small(data_dir, epochs=2)

    class Stop(Exception):
        pass

    def stop(metrics):
        raise Stop

    with pytest.raises(Stop):
        train(cfg, Callbacks(epoch=stop), checkpoint=tmp_path / "run.pt")
    resumed = train(cfg, checkpoint=tmp_path / "run.pt")
    assert resumed.resumed_from_epoch == 1 and resumed.epochs_trained == 2
    assert resumed.step_mode == "graph", resumed.step_mode_reason

import math

import pytest
import torch

from study.config import Config
from study.engine.device import bf16_native
from study.engine.results import Callbacks, Diverged, Stop
from study.engine.train import train


def small(data_dir, **kw):
    return Config(dataset="cifar10", resolution=32, data_dir=data_dir, **kw)


def test_loss_goes_down_and_metrics_are_complete(data_dir):
    m = train(small(data_dir, epochs=3, lr=0.05, aug_strength=0.0), test=True)
    assert m.train_loss_curve[-1] < m.train_loss_curve[0] - 0.1
    assert m.val_accuracy > 0.2  # chance is 0.10
    for key in ("params", "flops_per_image", "val_accuracy", "images_per_second", "seconds", "test_accuracy"):
        assert getattr(m, key) is not None, key
    assert 0 <= m.test_accuracy <= 1 and m.test_accuracy != m.val_accuracy
    assert m.params == 317_634 and m.flops_per_image > 1e7
    assert len(m.val_accuracy_curve) == 3 and m.epochs_trained == 3
    # precision auto: bf16 only where this CPU runs it natively (emulated bf16 is ~10x slower than fp32)
    assert m.precision == ("bf16" if bf16_native(torch.device("cpu")) else "fp32")


def test_a_diverging_run_raises_diverged(data_dir):
    with pytest.raises(Diverged, match="lower lr"):
        train(small(data_dir, epochs=2, lr=1e6, data_fraction=0.1, precision="fp32"))


def test_a_result_callback_stops_the_run_and_the_end_callback_sees_its_metrics(data_dir):
    results, ends = [], []

    def stop_after_first(result):
        results.append((result.member, result.epoch, result.val_accuracy))
        raise Stop("enough")

    callbacks = Callbacks(result=stop_after_first, end=lambda member, metrics: ends.append((member, metrics)))
    with pytest.raises(Stop, match="enough"):
        train(small(data_dir, epochs=3, data_fraction=0.1, precision="fp32"), callbacks)
    assert [(member, epoch) for member, epoch, _ in results] == [(0, 1)]
    (member, metrics), = ends
    assert member == 0 and metrics.epochs_trained == 1 and metrics.val_accuracy == results[0][2]


def test_same_seed_same_curve_fp32(data_dir):
    cfg = small(data_dir, epochs=1, data_fraction=0.1, precision="fp32")
    a, b = train(cfg), train(cfg)
    assert math.isclose(a.train_loss_curve[0], b.train_loss_curve[0], rel_tol=1e-4)


class _Stop(Exception):
    pass


def test_a_run_stopped_after_an_epoch_resumes_to_the_same_numbers(data_dir, tmp_path):
    cfg = small(data_dir, epochs=2, data_fraction=0.1, batch_size=32, precision="fp32", device="cpu",
                mixup_alpha=0.4, cutout=8.0)
    whole = train(cfg)

    def stop(metrics):
        raise _Stop

    checkpoint = tmp_path / "run.pt"
    with pytest.raises(_Stop):
        train(cfg, Callbacks(epoch=stop), checkpoint=checkpoint)
    resumed = train(cfg, checkpoint=checkpoint)
    assert resumed.resumed_from_epoch == 1
    assert resumed.train_loss_curve == whole.train_loss_curve
    assert resumed.val_loss_curve == whole.val_loss_curve

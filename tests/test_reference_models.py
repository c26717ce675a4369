import pytest
import torch

from reports import literature
from study.config import Config
from study.engine import models
from study.engine.flops import flops_per_image
from study.engine.train import train

# (parameters, MACs at 32x32) for 10 classes with the CIFAR adaptation
PINNED = {
    "resnet18": (11_173_962, 555_422_720),
    "se_resnet18": (11_263_042, 555_509_760),
    "mobilenet_v2": (2_236_682, 87_976_448),
    "efficientnet_b0": (4_020_358, 31_979_392),
}
REFERENCE = list(PINNED)


@pytest.mark.parametrize("name", REFERENCE)
def test_reference_counts_are_pinned(name):
    model = models.build(Config(model=name, resolution=32), 10)
    params, macs = PINNED[name]
    assert sum(p.numel() for p in model.parameters()) == params
    assert flops_per_image(model, 32, torch.device("cpu")) == 2 * macs


@pytest.mark.parametrize("name", [*REFERENCE, "cnn", "naivenet"])
@pytest.mark.parametrize("resolution", [32, 128])
def test_every_model_trains_a_step_at_32_and_128(name, resolution):
    model = models.build(Config(model=name, resolution=resolution), 10)
    out = model(torch.randn(2, 3, resolution, resolution))
    assert out.shape == (2, 10)
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_cifar_stem_is_on_at_32_and_can_be_forced():
    small = models.build(Config(model="resnet18", resolution=32), 10)
    big = models.build(Config(model="resnet18", resolution=128), 10)
    forced = models.build(Config(model="resnet18", resolution=128, cifar_stem=True), 10)
    assert small.conv1.stride == (1, 1) and isinstance(small.maxpool, torch.nn.Identity)
    assert big.conv1.stride == (2, 2) and forced.conv1.stride == (1, 1)


def _affine_gap(activation: str) -> float:
    torch.manual_seed(0)
    model = models.build(Config(model="cnn", resolution=32, depth=2, activation=activation, pooling="avg"), 10).eval()
    x, y = torch.rand(8, 3, 32, 32), torch.rand(8, 3, 32, 32)
    with torch.no_grad():
        fx, fy = model(x), model(y)
        gaps = [(model(t * x + (1 - t) * y) - (t * fx + (1 - t) * fy)).abs().max() / fx.abs().max() for t in (0.1, 0.37, 0.8)]
    return float(max(gaps))


def test_identity_and_average_pooling_collapse_to_an_affine_map():
    assert _affine_gap("identity") < 1e-4
    assert _affine_gap("relu") > 1e-3  # four orders of magnitude above the identity case


def test_cnn_stays_under_a_million_parameters_at_stage_one():
    assert sum(p.numel() for p in models.build(Config(model="cnn", resolution=32, depth=0), 10).parameters()) < 1_000_000


@pytest.mark.parametrize("name", [*REFERENCE, "cnn"])
def test_one_real_epoch_of_each_model(name, data_dir):
    m = train(Config(model=name, dataset="cifar10", resolution=32, epochs=1, data_fraction=0.05, data_dir=data_dir))
    assert 0 <= m.val_accuracy <= 1 and m.train_loss_curve[0] == m.train_loss_curve[0]
    assert m.images_per_second > 0


def test_literature_lookup():
    assert literature.baseline("resnet18", "cifar10").accuracy == pytest.approx(0.9528)
    assert literature.baseline("efficientnet_b0", "cifar10") is None
    assert literature.published("mobilenet_v2", "cifar100") == pytest.approx(0.742)

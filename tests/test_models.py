import pytest
import torch

from study.config import Config
from study.engine import models
from study.engine.models.naivenet import NaiveNet
from study.errors import UserError

SEED_COUNT = 320_464  # the seed's NaiveNet for 100 classes, with bias-free SE


def count(model):
    return sum(p.numel() for p in model.parameters())


def test_default_naivenet_is_the_seeds_network():
    n = count(models.build(Config(), 100))
    assert n == 320_604  # torchvision's SqueezeExcitation adds 140 biases
    assert abs(n - SEED_COUNT) / SEED_COUNT < 0.01


@pytest.mark.parametrize("se,width,depth,separable", [
    *[(se, 1.0, 2, True) for se in ("none", "frontend", "main", "both", "all")],
    ("both", 0.5, 0, True), ("both", 2.0, 4, True), ("both", 1.0, 2, False),
])
def test_every_knob_builds_and_keeps_shapes(se, width, depth, separable):
    model = NaiveNet(10, width, depth, se, separable)
    for resolution in (32, 64, 128):
        assert model(torch.randn(2, 3, resolution, resolution)).shape == (2, 10)


def test_knobs_change_the_network_as_documented():
    counts = {se: count(NaiveNet(100, se=se)) for se in ("none", "frontend", "main", "both", "all")}
    assert counts["none"] < counts["frontend"] < counts["both"] < counts["all"]
    assert counts["none"] < counts["main"] < counts["both"]
    assert count(NaiveNet(100, depth=4)) - count(NaiveNet(100, depth=2)) == 2 * count(NaiveNet(100).main[0])
    assert count(NaiveNet(100, separable=False)) > count(NaiveNet(100))
    assert count(NaiveNet(100, width=2.0)) > 3 * count(NaiveNet(100))


def test_unknown_model_lists_the_choices():
    with pytest.raises(UserError, match="naivenet"):
        models.build(Config(model="nope"), 10)

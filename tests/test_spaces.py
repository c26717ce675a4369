"""Every shipped space loads, builds its models at 32 and 128, and trains one real epoch."""

from pathlib import Path

import pytest

from study.engine import models
from study.engine.train import train
from study.errors import UserError
from study.search.preflight import _check_needs
from study.spaces import kinds
from study.spaces import space as spaces

SPACES = sorted((Path(__file__).resolve().parents[1] / "spaces").glob("*.py"))


def first_config(space):
    if space.kind.name == "search":
        return space.defaults
    return space.defaults.replace(**space.kind.variants()[0].settings)


@pytest.mark.parametrize("path", SPACES, ids=lambda p: p.stem)
def test_space_loads_builds_and_trains_an_epoch(path, data_dir):
    space = spaces.load(path)
    assert space.summary and space.kind.name in ("search", "ablation", "comparison")
    variants = space.kind.variants() if isinstance(space.kind, kinds.Grid) else []
    configs = [space.defaults] + [space.defaults.replace(**v.settings) for v in variants]
    for config in {c.model for c in configs}:
        for resolution in (32, 128):
            models.build(space.defaults.replace(model=config, resolution=resolution), 10)
    m = train(first_config(space).replace(data_dir=data_dir, epochs=1, data_fraction=0.05))
    assert 0 <= m.val_accuracy <= 1 and m.params > 0


def test_comparison_grid_and_set_narrowing():
    space = spaces.load(Path(spaces.__file__).parents[2] / "spaces" / "baselines.py")
    assert len(space.kind.variants()) == 5 * 4 * 2
    narrowed = space.kind.variants({"data_fraction": 0.1, "epochs": 1})
    assert [v.settings["model"] for v in narrowed] == ["naivenet", "resnet18", "se_resnet18", "mobilenet_v2", "efficientnet_b0"]


def test_a_gpu_space_says_so_and_runs_when_forced():
    space = spaces.load(Path(spaces.__file__).parents[2] / "spaces" / "stage4_resnet18.py")
    with pytest.raises(UserError, match="needs a CUDA device and the full data set.*--force"):
        _check_needs(space, space.defaults.replace(device="cpu"), 5438, force=False)
    _check_needs(space, space.defaults.replace(device="cpu"), 5438, force=True)

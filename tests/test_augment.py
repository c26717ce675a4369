import torch

from study.config import Config
from study.engine import augment

MEAN, STD = torch.tensor([0.5, 0.5, 0.5]), torch.tensor([0.25, 0.25, 0.25])


def images(n=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g)


def test_strength_zero_is_the_evaluation_transform():
    x = images()
    for resolution in (32, 128):
        config = Config(resolution=resolution, aug_strength=0)
        out, target = augment.train_batch(x, torch.arange(16) % 10, config, 10, augment.train_constants(config, MEAN, STD))
        assert out.shape == (16, 3, resolution, resolution)
        torch.testing.assert_close(out, augment.eval_batch(x, resolution, MEAN, STD))
        assert torch.equal(target, torch.arange(16) % 10)


def test_randomness_is_per_sample():
    x = images(1).expand(8, -1, -1, -1)
    config = Config(resolution=128)
    out, _ = augment.train_batch(x, torch.zeros(8, dtype=torch.long), config, 10, augment.train_constants(config, MEAN, STD))
    flat = out.flatten(1)
    distances = torch.cdist(flat, flat)
    assert (distances + torch.eye(8) > 1e-3).all(), "every pair of copies must be augmented differently"


def test_flip_is_horizontal_only():
    x = images()
    cfg = Config(resolution=32, flip=1.0, translate=0, rotate=0, shear=0, brightness=0, contrast=0, saturation=0, hue=0)
    out, _ = augment.train_batch(x, torch.zeros(16, dtype=torch.long), cfg, 10, augment.train_constants(cfg, MEAN, STD))
    torch.testing.assert_close(out, augment.eval_batch(x, 32, MEAN, STD).flip(-1))


def test_colour_jitter_stays_in_range_and_changes_colours():
    x = images().float() / 255
    y = augment.colour_jitter(x, 0.4, 0.4, 0.4, 0.1)
    assert y.min() >= 0 and y.max() <= 1
    assert (y - x).abs().mean() > 0.01
    torch.testing.assert_close(augment.colour_jitter(x, 0, 0, 0, 0), x)


def test_cutout_erases_a_square_of_the_asked_size():
    x = torch.ones(4000, 1, 32, 32)
    out = augment.cutout(x, 8)
    erased = (out == 0).flatten(1).sum(1).float()
    assert erased.max() == 64  # a whole 8x8 square when it lies inside
    assert 40 < erased.mean() < 64  # squares near the edge are partly outside


def test_mixup_blends_images_and_targets_alike():
    x = images(64).float()
    onehot = torch.nn.functional.one_hot(torch.arange(64) % 10, 10).float()
    mixed, target = augment.mixup(x, onehot, 0.4)
    torch.testing.assert_close(target.sum(1), torch.ones(64))
    assert (target.max(1).values < 1).any()
    assert mixed.min() >= x.min() - 1e-3 and mixed.max() <= x.max() + 1e-3  # convex combinations

"""shapes: a model of your own, with settings of its own, searched on your own images.

Make the images first: `python spaces/examples/make_shapes.py` (3 classes of 32x32 PNGs in
runs/shapes/). The model is defined below; it reads the built-in `width` and two settings this space
declares (`kernel_size`, `blocks`), which `suggest` searches, `--set` fixes and an ablation's
components knock out like any built-in setting.
"""

from torch import nn

dataset = "runs/shapes"  # train/<class>/*.png and test/<class>/*.png, relative to where you run
resolution = 32
epochs = 6
batch_size = 64
trials = 8
augmentation = "crop_flip"
settings = {"kernel_size": 3, "blocks": 2}


def model(config, num_classes):
    """A Conv-BN-ReLU stem, then `blocks` stages of max-pool and Conv-BN-ReLU doubling the channels;
    a 2x2 average pool keeps where features are, for the linear classifier."""
    k, c = config.kernel_size, max(8, round(16 * config.width))
    layers = [nn.Conv2d(3, c, k, padding=k // 2, bias=False), nn.BatchNorm2d(c), nn.ReLU()]
    for _ in range(config.blocks):
        layers += [nn.MaxPool2d(2), nn.Conv2d(c, 2 * c, k, padding=k // 2, bias=False), nn.BatchNorm2d(2 * c), nn.ReLU()]
        c *= 2
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(4 * c, num_classes))


def suggest(trial):
    return {
        "lr": trial.suggest_float("lr", 0.003, 0.1, log=True),
        "width": trial.suggest_categorical("width", [0.5, 1.0, 2.0]),
        "kernel_size": trial.suggest_categorical("kernel_size", [3, 5]),
        "blocks": trial.suggest_int("blocks", 1, 3),
    }

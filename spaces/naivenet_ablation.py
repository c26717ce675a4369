"""NaiveNet's own claims, tested: SE blocks, the 128x128 upscale, depthwise-separable convs, augmentation.

The seed calls SE "the most impactful improvement" and credits the upscale with "significant
improvements"; it swapped standard 3x3 convs for depthwise-separable ones to save parameters and
time. Each is knocked out alone from the seed's configuration (CIFAR-100, 128x128, 20 epochs),
3 seeds per variant.
"""

model = "naivenet"
dataset = "cifar100"
resolution = 128
epochs = 20

design = "one_out"
seeds = 3
components = {
    "se": ("both", "none"),
    "upscaling": {"resolution": (128, 32)},
    "separable": (True, False),
    "augmentation": {"aug_strength": (1.0, 0.0)},
}

"""Stage 1: a Conv -> ReLU -> MaxPool CNN under 1M parameters, and the linear-collapse experiment.

The staged course project's baseline (113,738 parameters) on CIFAR-10. Swapping ReLU for the
identity and max- for average pooling removes every non-linearity: the network collapses to one
affine map, and its accuracy to that of a linear classifier. All four combinations, 2 seeds.
"""

model = "cnn"
dataset = "cifar10"
resolution = 32
depth = 0
epochs = 15
lr = 0.02
weight_decay = 5e-4
schedule = "cosine"
label_smoothing = 0.0
aug_strength = 0.0

seeds = 2
compare = {"activation": ["relu", "identity"], "pooling": ["max", "avg"]}

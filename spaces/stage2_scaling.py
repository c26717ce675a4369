"""Stage 2: width x1/x2/x4 against depth +0/+2/+4/+8 conv blocks without pooling, on CIFAR-10.

Diagnostics show where scaling breaks: gradient norms per layer over the first epoch (vanishing
gradients at extreme depth: no batch norm, no skips yet) and the train-validation accuracy gap per
epoch (overfitting at extreme width).
"""

model = "cnn"
dataset = "cifar10"
resolution = 32
epochs = 15
lr = 0.02
weight_decay = 5e-4
schedule = "cosine"
label_smoothing = 0.0
aug_strength = 0.0
record_grad_norms = True

seeds = 1
compare = {"width": [1.0, 2.0, 4.0], "depth": [0, 2, 4, 8]}

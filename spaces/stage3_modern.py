"""Stage 3: residual connections, batch norm, label smoothing, dropout and weight decay, each knocked out.

The stage-2 network at width x2 and +4 blocks, made modern; one_out removes each component alone,
3 seeds, CIFAR-10, crop + flip.
"""

model = "cnn"
dataset = "cifar10"
resolution = 32
width = 2.0
depth = 4
epochs = 15
lr = 0.05
schedule = "cosine"
augmentation = "crop_flip"  # +-4 px crop and a flip, no rotation, shear or colour jitter
record_grad_norms = True

design = "one_out"
seeds = 3
components = {
    "residual": (True, False),
    "batchnorm": (True, False),
    "label_smoothing": (0.1, 0.0),
    "dropout": (0.3, 0.0),
    "weight_decay": (5e-4, 0.0),
}

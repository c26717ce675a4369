"""NaiveNet against ResNet-18, SE-ResNet-18, MobileNetV2 and EfficientNet-B0: one recipe, one budget.

The NaiveNet project's goal: baselines "w.r.t. hardware constraints, training effort, and dataset
requirements". Every model trains with the same recipe (SGD momentum 0.9, lr 0.05, weight decay
5e-4, cosine, label smoothing 0.1, batch 128, crop 4 px + flip) at 32x32 with its CIFAR stem;
`--set resolution=128` compares them all on NaiveNet's upscale instead. Axes: the model, the
data requirement (data_fraction 0.1 / 0.25 / 0.5 / 1.0) and the training effort (15 and 30 epochs,
plus validation accuracy after every epoch), 2 seeds each. Each trial records its model, accuracy,
parameters, FLOPs, images/s, seconds, peak memory and device.
"""

model = "naivenet"
dataset = "cifar100"
resolution = 32
epochs = 30
lr = 0.05
weight_decay = 5e-4
schedule = "cosine"
label_smoothing = 0.1
augmentation = "crop_flip"  # +-4 px crop and a flip, no rotation, shear or colour jitter

seeds = 2
compare = {
    "model": ["naivenet", "resnet18", "se_resnet18", "mobilenet_v2", "efficientnet_b0"],
    "data_fraction": [0.1, 0.25, 0.5, 1.0],
    "epochs": [15, 30],
}

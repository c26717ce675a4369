"""Stage 4: reproduce ResNet-18 on CIFAR-10 (target > 93%; literature 95.28%, the Cutout paper's baseline).

The reproduction recipe: SGD momentum 0.9, lr 0.1, weight decay 5e-4, cosine annealing over 200
epochs, batch 128, crop (4 px) + flip, no label smoothing. It needs a GPU and the full data set
(about 2 hours on one modern GPU); `run` says so without them and runs anyway with --force.
"""

model = "resnet18"
dataset = "cifar10"
resolution = 32
epochs = 200
lr = 0.1
weight_decay = 5e-4
schedule = "cosine"
label_smoothing = 0.0
augmentation = "crop_flip"  # +-4 px crop and a flip, no rotation, shear or colour jitter

needs = ("cuda", "full_data")
seeds = 1
compare = {"model": ["resnet18"]}

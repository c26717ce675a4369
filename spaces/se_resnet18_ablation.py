"""SE-ResNet-18 + MixUp + Cutout on CIFAR-10: what each part buys (the staged project's stage 5).

Full model: ResNet-18 with the CIFAR stem and squeeze-and-excitation in every basic block, trained
with MixUp (alpha 0.2) and Cutout (16 px). `one_out` knocks out each of the three alone, 3 seeds per
variant. Recipe: SGD momentum 0.9, lr 0.1, weight decay 5e-4, cosine annealing, crop (4 px) + flip,
no label smoothing (the MixUp targets are already soft).
"""

model = "se_resnet18"
dataset = "cifar10"
resolution = 32
epochs = 30
lr = 0.1
weight_decay = 5e-4
schedule = "cosine"
label_smoothing = 0.0
# crop + flip only: the stage-4 recipe that MixUp and Cutout are added to
augmentation = "crop_flip"  # +-4 px crop and a flip, no rotation, shear or colour jitter

design = "one_out"
seeds = 3
components = {
    "se": {"model": ("se_resnet18", "resnet18")},
    "mixup": {"mixup_alpha": (0.2, 0.0)},
    "cutout": {"cutout": (16.0, 0.0)},
}

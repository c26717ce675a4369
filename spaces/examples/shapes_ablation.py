"""shapes_ablation: what the shapes model's larger kernel and third stage each add (one-out, 3 seeds).

The model is the one in shapes.py, named by its file; the two settings it reads are declared again
here, at their full values, and each component knocks one of them back.
"""

model = "spaces/examples/shapes.py:model"
dataset = "runs/shapes"
resolution = 32
epochs = 6
batch_size = 64
augmentation = "crop_flip"
settings = {"kernel_size": 5, "blocks": 3}
components = {"large kernel": {"kernel_size": (5, 3)}, "third stage": {"blocks": (3, 2)}}
seeds = 3

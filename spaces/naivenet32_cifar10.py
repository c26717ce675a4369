"""NaiveNet at 32x32 on CIFAR-10: the laptop-sized search (100 epochs in about 10 minutes on 2 CPU cores).

The seed's network without the upscale, at CIFAR's own resolution, with the usual 32x32 crop of
+-4 px. Same search as naivenet128: learning rate, weight decay, width, depth, SE placement and
augmentation strength, with Hyperband pruning over epochs. The budget is compute: 100 epochs in all,
ten full-length trials' worth, so the epochs that pruning saves buy more trials.
"""

model = "naivenet"
dataset = "cifar10"
resolution = 32
epochs = 10
budget_epochs = 100
lr = 0.05
translate = 4.0


def suggest(trial):
    return {
        "lr": trial.suggest_float("lr", 1e-3, 2e-1, log=True),
        "weight_decay": trial.suggest_float("weight_decay", 1e-5, 1e-3, log=True),
        "width": trial.suggest_categorical("width", [0.5, 1.0, 1.5]),
        "depth": trial.suggest_int("depth", 0, 4),
        "se": trial.suggest_categorical("se", ["none", "frontend", "main", "both", "all"]),
        "aug_strength": trial.suggest_float("aug_strength", 0.0, 1.0),
    }

"""NaiveNet at 128x128 on CIFAR-100: the seed's network and recipe, with its hand-run sweeps automated.

Trial 0 is the seed's own configuration (lr 0.01, weight decay 1e-4, width 1, depth 2, SE in the
frontend and main stages, the seed's augmentation); the search varies learning rate, weight decay,
width, depth, SE placement and augmentation strength, pruning weak trials by Hyperband over epochs.
"""

model = "naivenet"
dataset = "cifar100"
resolution = 128
epochs = 20
budget_epochs = 800  # forty full-length trials' worth; pruning buys more trials


def suggest(trial):
    return {
        "lr": trial.suggest_float("lr", 1e-3, 1e-1, log=True),
        "weight_decay": trial.suggest_float("weight_decay", 1e-5, 1e-3, log=True),
        "width": trial.suggest_categorical("width", [0.5, 1.0, 1.5, 2.0]),
        "depth": trial.suggest_int("depth", 0, 4),
        "se": trial.suggest_categorical("se", ["none", "frontend", "main", "both", "all"]),
        "aug_strength": trial.suggest_float("aug_strength", 0.0, 1.0),
    }

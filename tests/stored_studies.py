"""Small studies in the stored format, built with optuna and study/store/record.py's writers, for the report tests.

The writers refuse a name that is not a field of StudyInfo or TrialInfo, so a misspelt attribute fails
here rather than showing as a blank cell the tests would not notice.
"""

from __future__ import annotations

from typing import Any

import optuna
from optuna.trial import TrialState

from study.store import record

CLASSES = ["airplane", "automobile", "bird"]


def new_study(name: str, storage: Any = None, **attrs: Any) -> optuna.Study:
    study = optuna.create_study(study_name=name, storage=storage, direction="maximize")
    dataset = {"name": "cifar10", "root": "/data", "classes": CLASSES, "train_images": 5438, "test_images": 1017}
    record.write_study(study, **{"dataset": dataset, **attrs})
    return study


def add(study: optuna.Study, value: float | None, state: TrialState = TrialState.COMPLETE,
        config: dict[str, Any] | None = None, **attrs: Any) -> None:
    config = {"epochs": 10, "data_fraction": 1.0, **(config or {})}
    study.add_trial(optuna.trial.create_trial(
        state=state, value=value if state == TrialState.COMPLETE else None,
        user_attrs=record.trial_attrs(config=config, **{"device": "cpu", **attrs}),
    ))


ABLATION = {"full": [0.70, 0.72, 0.74], "no se": [0.60, 0.61, 0.65], "no mixup": [0.69, 0.71]}


def ablation_study(storage: Any = None, name: str = "ablation") -> optuna.Study:
    study = new_study(name, storage, kind="ablation", design="one_out", reference_variant="full", seeds=3,
                      components={"se": {"setting": "se", "full": "both", "ablated": "none"},
                                  "mixup": {"setting": "mixup_alpha", "full": 0.2, "ablated": 0.0}})
    on = {"full": ["se", "mixup"], "no se": ["mixup"], "no mixup": ["se"]}
    for variant, values in ABLATION.items():
        for seed, v in enumerate(values):
            add(study, v, config={"seed": seed}, variant=variant, components_on=on[variant],
                params=1000 if "se" in on[variant] else 900, flops_per_image=2e6, seconds=10.0 + seed,
                confusion_matrix=[[5, 1, 0], [2, 4, 0], [0, 0, 6]], train_accuracy_curve=[0.5, v + 0.1],
                val_accuracy_curve=[0.4, v])
    add(study, None, TrialState.FAIL, variant="no se", fail_reason="Diverged: loss became nan")
    return study


FACTORIAL = {"full": [0.80, 0.82], "se": [0.70, 0.72], "mixup": [0.60, 0.62], "bare": [0.55, 0.57]}


def factorial_study(storage: Any = None) -> optuna.Study:
    study = new_study("factorial", storage, kind="ablation", design="factorial", reference_variant="full", seeds=2,
                      components={"se": {}, "mixup": {}})
    on = {"full": ["se", "mixup"], "se": ["se"], "mixup": ["mixup"], "bare": []}
    for variant, values in FACTORIAL.items():
        for v in values:
            add(study, v, variant=variant, components_on=on[variant])
    return study


PATH = [
    {"step": 0, "param": "reference", "from": None, "to": None, "val_accuracy_mean": 0.60, "val_accuracy_std": 0.01, "gain": 0.0},
    {"step": 1, "param": "lr", "from": 0.01, "to": 0.05, "val_accuracy_mean": 0.66, "val_accuracy_std": 0.02, "gain": 0.06,
     "gain_ci_half_width": 0.03, "within_noise": False},
    {"step": 2, "param": "se", "from": "both", "to": "none", "val_accuracy_mean": 0.65, "val_accuracy_std": 0.01, "gain": -0.01,
     "gain_ci_half_width": 0.02, "within_noise": True},
]


def path_study(storage: Any = None) -> optuna.Study:
    study = new_study("search-ablation-path", storage, kind="ablation_path", source_study="search", path=PATH)
    add(study, 0.60, variant="reference")
    return study


def comparison_study(storage: Any = None) -> optuna.Study:
    """naivenet and resnet18 at 10 epochs on all data (2 seeds), naivenet also on a quarter of it."""
    study = new_study("baselines", storage, kind="comparison")
    runs = [("naivenet", 1.0, 0.70, 0.69, 1e6, 50e6, 900.0), ("naivenet", 1.0, 0.72, 0.71, 1e6, 50e6, 1100.0),
            ("naivenet", 0.25, 0.50, None, 1e6, 50e6, 1000.0), ("naivenet", 0.25, 0.52, None, 1e6, 50e6, 1000.0),
            ("resnet18", 1.0, 0.80, 0.79, 11e6, 556e6, 200.0), ("resnet18", 1.0, 0.84, 0.81, 11e6, 556e6, 300.0)]
    for model, fraction, val, test, params, flops, speed in runs:
        extra = {} if test is None else {"test_accuracy": test}
        add(study, val, config={"model": model, "data_fraction": fraction, "epochs": 2}, model=model, params=params,
            flops_per_image=flops, images_per_second=speed, seconds=60.0, val_accuracy_curve=[val - 0.1, val], **extra)
    return study


FINAL = {"naivenet": [0.68, 0.70], "resnet18": [0.82, 0.86]}


def final_study(storage: Any = None) -> optuna.Study:
    """What `python -m study final` stores for the comparison: each model retrained, test accuracy as the value."""
    study = new_study("baselines-final", storage, kind="final", source_study="baselines", seeds=2)
    source = {"naivenet": 0, "resnet18": 4}  # each model's lowest-seed full-data trial in comparison_study
    for model, values in FINAL.items():
        for seed, v in enumerate(values):
            add(study, v, candidate=f"model={model}", model=model, seed=seed, source_trial=source[model], test_accuracy=v,
                val_accuracy=v + 0.01, scored_once=True)
    return study

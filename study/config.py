"""One training configuration: the seed's defaults, written once, and checked overrides.

The defaults rebuild `naivenet_128x128_cuda.py`: NaiveNet at 128x128 on CIFAR-100, SGD with
momentum 0.9, lr 0.01, weight decay 1e-4, OneCycle, label smoothing 0.1, batch 128, 20 epochs,
and its augmentation (crop +-4 px at 128, flip, rotate 10 deg, shear 5 deg, colour jitter
0.1/0.1/0.1/0.02).
"""

from __future__ import annotations

import ast
import dataclasses
import math
import re
import types
import typing
from dataclasses import dataclass, fields
from typing import Any

from study.errors import UserError

CHOICES: dict[str, tuple[str, ...]] = {
    "dataset": ("cifar10", "cifar100"),
    "se": ("none", "frontend", "main", "both", "all"),
    "schedule": ("onecycle", "cosine"),
    "precision": ("auto", "bf16", "fp32"),
    "activation": ("relu", "identity"),
    "pooling": ("max", "avg"),
}


DATASET_CLASSES = {"cifar10": 10, "cifar100": 100}
CIFAR_SIZE = 32  # px per side of a CIFAR image
FULL_TRAIN_IMAGES = 50_000  # each CIFAR data set in full; fewer is a subset
FULL_TEST_IMAGES = 10_000
DECLARED = "declared"  # the Config field of a space's own settings, and to_dict's list of their names
# what a space's own settings (its `settings = {...}` table) may hold: the types a --set value parses to
DECLARED_TYPES = (bool, int, float, str)
MAX_SEED = 2**32 - 1  # numpy's and Optuna's samplers take seeds below 2**32
MAX_EPOCHS = 100_000  # far beyond any CIFAR recipe: a larger number is a typo
# what can be built: past these a model takes hours to build or more memory than any machine has
MAX_WIDTH = 16.0  # channel multiplier: NaiveNet's widest layer at 3,072 channels (the shipped spaces go to 4)
MAX_DEPTH = 64  # blocks added to the main stage (the shipped spaces go to 8)
# px per side: one 128-image batch past it is over 25 TB; below it, a too-big trial fails alone as out of memory
MAX_RESOLUTION = 131_072
# augmentation magnitudes (px, degrees, factors) and the MixUp alpha: negative values mean nothing
# where a run happens, not what it trains: a stored run answers a request whatever these read
WHERE_IT_RUNS = ("data_dir", "device")
NON_NEGATIVE = ("translate", "rotate", "shear", "brightness", "contrast", "saturation", "cutout", "mixup_alpha")


@dataclass(frozen=True)
class Config:
    # what is trained
    model: str = "naivenet"
    dataset: str = "cifar100"
    resolution: int = 128  # px per side fed to the model; CIFAR's 32 px upscaled by an integer factor
    num_classes: int = 0  # 0: taken from the data set
    image_size: int = 0  # own images (study/engine/datasets.py) are resized to this once; 0: their files' size
    # data
    data_dir: str | None = None  # None: --data-dir, else $STUDY_DATA_DIR, else the user cache
    val_fraction: float = 0.1  # of the training set, stratified by class; the test set is never used
    data_fraction: float = 1.0  # stratified subsample of what remains for training
    seed: int = 0  # model init, data order and augmentation
    split_seed: int = 0  # which images form the validation split (and the data_fraction subsample)
    # NaiveNet's knobs
    width: float = 1.0  # channel multiplier
    depth: int = 2  # residual blocks in the main stage
    se: str = "both"  # where squeeze-and-excitation blocks go
    separable: bool = True  # depthwise-separable (True) or standard 3x3 convs in the main stage
    # recipe
    epochs: int = 20
    batch_size: int = 128
    lr: float = 0.01  # OneCycle peaks at 5x this
    momentum: float = 0.9  # the cosine schedule's; OneCycle cycles it 0.95 -> 0.85 -> 0.95, OneCycleLR's default
    weight_decay: float = 1e-4
    schedule: str = "onecycle"
    label_smoothing: float = 0.1
    # augmentation: each value is its strength at aug_strength = 1, in the unit named
    aug_strength: float = 1.0  # scales every augmentation below; 0 turns them all off
    translate: float = 1.0  # px at 32x32 (the seed's 4 px crop padding at 128)
    flip: float = 0.5  # probability of a horizontal flip (never vertical)
    rotate: float = 10.0  # degrees, uniform in +-rotate
    shear: float = 5.0  # degrees, uniform in +-shear
    brightness: float = 0.1  # factor uniform in 1 +- brightness
    contrast: float = 0.1
    saturation: float = 0.1
    hue: float = 0.02  # fraction of a full turn of hue
    cutout: float = 0.0  # side of the erased square, px at 32x32 (scaled with resolution)
    mixup_alpha: float = 0.0  # Beta(alpha, alpha) mixing weight; 0 = off
    # how it runs
    device: str = "auto"  # auto (cuda when present), cpu, cuda or cuda:N
    # bf16 autocast, fp32 (autocast off), or auto: bf16 where the device runs it natively, else fp32
    precision: str = "auto"
    channels_last: bool = True
    record_grad_norms: bool = False  # gradient norm of every weight over the first epoch (vanishing gradients)
    # reference models and the staged project's CNN
    cifar_stem: bool | None = None  # small-input adaptation of torchvision models; None: on at 32x32 only
    activation: str = "relu"  # cnn: relu, or identity for the linear-collapse experiment
    pooling: str = "max"  # cnn
    residual: bool = False  # cnn: skip connections around the extra blocks
    batchnorm: bool = False  # cnn
    dropout: float = 0.0  # cnn: before the classifier
    # performance
    compile: bool = False  # torch.compile the training forward; for GPUs: 2x slower on the bench's CPU (docs/performance.md)
    # the space's own settings (its `settings = {...}` table), as sorted (name, value) pairs; read them
    # as attributes (`config.kernel_size`) and set them as any other setting (replace, --set, suggest)
    declared: tuple[tuple[str, Any], ...] = ()

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise UserError(f"{f.name}={value!r} is invalid: it must be a finite number")
        _check_declared(self.declared)
        for name, options in CHOICES.items():
            if name == "dataset" and is_own_dataset(self.dataset):
                continue
            if getattr(self, name) not in options:
                also = " or a path to an image folder (with a /) or a .npz file" if name == "dataset" else ""
                raise UserError(
                    f"{name}={getattr(self, name)!r} is not supported; choose one of: {', '.join(options)}{also}"
                )
        checks = [
            ("device", self.device in ("auto", "cpu", "cuda") or re.fullmatch(r"cuda:\d+", self.device) is not None,
             "auto, cpu, cuda or cuda:N"),
            ("resolution", self.resolution >= 32 and self.resolution % 32 == 0, "a multiple of 32"),
            ("lr", self.lr > 0, "> 0"),
            ("weight_decay", self.weight_decay >= 0, ">= 0"),
            ("epochs", self.epochs >= 1, ">= 1"),
            ("batch_size", self.batch_size >= 1, ">= 1"),
            ("width", self.width > 0, "> 0"),
            ("depth", self.depth >= 0, ">= 0"),
            ("val_fraction", 0 < self.val_fraction < 1, "in (0, 1)"),
            ("data_fraction", 0 < self.data_fraction <= 1, "in (0, 1]"),
            ("aug_strength", 0 <= self.aug_strength <= 1, "in [0, 1]"),
            ("flip", 0 <= self.flip <= 1, "in [0, 1]"),
            ("label_smoothing", 0 <= self.label_smoothing < 1, "in [0, 1)"),
            ("num_classes", self.num_classes == 0 or self.num_classes >= DATASET_CLASSES.get(self.dataset, 1),
             f"0 (from the data) or at least the {DATASET_CLASSES.get(self.dataset)} classes of {self.dataset}"),
            ("image_size", self.image_size >= 0 and (is_own_dataset(self.dataset) or self.image_size in (0, CIFAR_SIZE)),
             f"0 (the files' size) or a size in px; CIFAR's images are {CIFAR_SIZE} px"),
            ("dropout", 0 <= self.dropout < 1, "in [0, 1)"),
            ("momentum", 0 <= self.momentum < 1, "in [0, 1)"),
            ("seed", 0 <= self.seed <= MAX_SEED, f"in [0, {MAX_SEED}]"),
            ("split_seed", 0 <= self.split_seed <= MAX_SEED, f"in [0, {MAX_SEED}]"),
            ("epochs", self.epochs <= MAX_EPOCHS, f"<= {MAX_EPOCHS}"),
            ("width", self.width <= MAX_WIDTH, f"<= {MAX_WIDTH} (a multiple of the seed's channels)"),
            ("depth", self.depth <= MAX_DEPTH, f"<= {MAX_DEPTH}"),
            ("resolution", self.resolution <= MAX_RESOLUTION, f"<= {MAX_RESOLUTION}"),
            ("hue", 0 <= self.hue <= 0.5, "in [0, 0.5] (a fraction of a turn)"),
            *((name, getattr(self, name) >= 0, ">= 0") for name in NON_NEGATIVE),
        ]
        for name, ok, must in checks:
            if not ok:
                raise UserError(f"{name}={getattr(self, name)!r} is invalid: it must be {must}")

    def __getattr__(self, name: str) -> Any:
        # only called where no field matches: the space's own settings read as attributes
        if not name.startswith("__"):
            for key, value in self.__dict__.get(DECLARED, ()):
                if key == name:
                    return value
        raise AttributeError(f"Config has no setting {name!r}")

    def replace(self, **overrides: Any) -> Config:
        """A copy with `overrides` applied, each checked against the field's type (a declared setting's:
        the type of its value in the space)."""
        own = dict(self.declared)
        checked = {k: coerce(k, v, own) for k, v in overrides.items()}
        mine = {k: checked.pop(k) for k in list(checked) if k in own}
        if mine:
            checked[DECLARED] = tuple(sorted({**own, **mine}.items()))
        return dataclasses.replace(self, **checked)

    def to_dict(self) -> dict[str, Any]:
        """Every setting by name, the declared ones beside the built-in ones; DECLARED lists their
        names, so that `from_dict` tells them from settings of another release."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != DECLARED}
        if self.declared:
            out.update(self.declared)
            out[DECLARED] = tuple(name for name, _ in self.declared)
        return out

    @classmethod
    def from_dict(cls, stored: dict[str, Any]) -> Config:
        """The Config `to_dict` gave (as stored); settings of a release other than this one's are dropped."""
        declared = tuple(sorted((name, stored[name]) for name in stored.get(DECLARED, ()) if name in stored))
        return cls(**{k: v for k, v in stored.items() if k in NAMES}, declared=declared)

    def declared_dict(self) -> dict[str, Any]:
        return dict(self.declared)

    def identity(self) -> tuple[tuple[str, Any], ...]:
        """What the run trains: every setting but where it runs. A stored run may stand in for a
        requested one only when their identities are equal."""
        return tuple((k, v) for k, v in self.to_dict().items() if k not in WHERE_IT_RUNS)

    def differences(self, other: Config) -> dict[str, Any]:
        """The settings (where it runs aside) in which `other` differs from this one, with other's values."""
        mine = dict(self.identity())
        return {k: v for k, v in other.identity() if mine[k] != v}


_TYPES = typing.get_type_hints(Config)
NAMES = tuple(f.name for f in fields(Config) if f.name != DECLARED)


def is_own_dataset(name: str) -> bool:
    """A dataset setting naming the user's own images (a folder or .npz file), not CIFAR."""
    return name not in DATASET_CLASSES and ("/" in name or name.endswith(".npz"))


def _check_declared(declared: tuple[tuple[str, Any], ...]) -> None:
    for name, value in declared:
        if name in NAMES or name == DECLARED or not name.isidentifier():
            raise UserError(f"settings[{name!r}]: a space's own setting needs a name of its own (a Python "
                            "identifier that is not a built-in setting); rename it")
        if type(value) not in DECLARED_TYPES:
            raise UserError(f"settings[{name!r}] = {value!r}: a space's own setting is a bool, int, float or str")


def coerce(name: str, value: Any, declared: dict[str, Any] | None = None) -> Any:
    """`value` as the type of setting `name` (of its value in `declared`, a space's own settings);
    unknown names and wrong types are a UserError."""
    declared = declared or {}
    if name in declared:
        expected: Any = type(declared[name])
    elif name in NAMES:
        expected = _TYPES[name]
    else:
        known = ", ".join([*NAMES, *declared])
        raise UserError(f"unknown setting {name!r}; known settings: {known}")
    allowed = typing.get_args(expected) if isinstance(expected, types.UnionType) else (expected,)
    if value is None and type(None) in allowed:
        return None
    if float in allowed and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if int in allowed and isinstance(value, float) and value.is_integer():
        return int(value)
    if not any(type(value) is t for t in allowed if t is not type(None)):
        names = " or ".join(t.__name__ for t in allowed)
        raise UserError(f"setting {name}={value!r} has the wrong type: expected {names}")
    return value


def parse_overrides(items: list[str], declared: dict[str, Any] | None = None) -> dict[str, Any]:
    """`["lr=0.05", "se=none"]` -> {"lr": 0.05, "se": "none"}; values are Python literals or bare strings.
    `declared`: the space's own settings, which may be set too."""
    out: dict[str, Any] = {}
    for item in items:
        name, sep, text = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise UserError(f"--set {item!r} is malformed: write --set name=value, e.g. --set lr=0.05")
        try:
            value = ast.literal_eval(text.strip())
        except (ValueError, SyntaxError):
            value = text.strip()  # a bare word such as `se=none` is a string
        except (RecursionError, MemoryError, TypeError, OverflowError) as exc:  # nested thousands deep, or huge
            raise UserError(f"--set {name}=...: the value cannot be read as a Python literal ({type(exc).__name__}); "
                            "write a plain number, word or short list") from None
        out[name] = coerce(name, value, declared)
    return out


# Named augmentation settings a space file picks with `augmentation = "..."` (its own settings win).
# "seed": Config's defaults; "crop_flip": the usual CIFAR recipe, +-4 px crop at 32 px and a flip.
AUGMENTATION_PRESETS: dict[str, dict[str, Any]] = {
    "seed": {},
    "crop_flip": dict(translate=4.0, rotate=0.0, shear=0.0, brightness=0.0, contrast=0.0, saturation=0.0, hue=0.0),
    "none": dict(aug_strength=0.0),
}


def fmt_setting(value: Any) -> str:
    """A setting at 3 significant digits, a whole float kept visibly a float: 1.0, 0.838, 1.85e-05, 0.0001."""
    if isinstance(value, float):
        text = f"{value:.3g}"
        return text if any(c in text for c in ".einf") else f"{text}.0"
    return "" if value is None else str(value)

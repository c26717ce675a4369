"""CIFAR-10/100 from the official python layout, read safely, split, and held on the device.

The pickles are read with a restricted unpickler (numpy arrays and plain built-ins only), so a
data file can never run code; torchvision is used only to download missing files.
"""

from __future__ import annotations

import functools
import io
import os
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from study.config import DATASET_CLASSES
from study.errors import UserError

ENV_VAR = "STUDY_DATA_DIR"
# CIFAR-100's training file, the largest, is 155 MiB: reading a file far beyond that is never right
MAX_FILE_BYTES = 1 << 30
IMAGE_BYTES = 3 * 32 * 32  # one image's row in the format: 1024 red, then green, then blue bytes

# folder, training files, test file, meta file, label key, class-name key
_LAYOUT = {
    "cifar10": (
        "cifar-10-batches-py",
        [f"data_batch_{i}" for i in range(1, 6)],
        "test_batch",
        "batches.meta",
        b"labels",
        b"label_names",
    ),
    "cifar100": ("cifar-100-python", ["train"], "test", "meta", b"fine_labels", b"fine_label_names"),
}

# Per-channel mean and std of each full training set, in [0, 1] units.
STATS = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
}


@dataclass(frozen=True)
class Images:
    """A whole data set in host memory: images uint8 [N, 3, S, S] (S = 32 for CIFAR), labels int64 [N], and
    the training images' per-channel mean and std in [0, 1] units. CIFAR's and own images alike
    (study/engine/datasets.py)."""

    name: str
    root: Path
    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    classes: tuple[str, ...]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    @property
    def num_classes(self) -> int:
        return len(self.classes)


@dataclass(frozen=True)
class Split:
    """Index tensors into the training set (disjoint) for one seed and fraction."""

    train: torch.Tensor
    val: torch.Tensor


class _ArraysOnly(pickle.Unpickler):
    # The CIFAR pickles reference exactly these globals; anything else could run code.
    _ALLOWED = {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
    }

    def find_class(self, module: str, name: str):  # noqa: ANN201 - pickle's signature
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}: data files may hold arrays only")
        return super().find_class(module, name)


def read_pickle(path: Path) -> dict:
    """One official CIFAR pickle as a dict with bytes keys; any failure names the file."""
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise UserError(f"{path} is {size / 2**30:.1f} GiB, far more than any CIFAR file "
                            f"(at most {MAX_FILE_BYTES // 2**20} MiB); fix --data-dir or replace the file")
        data = path.read_bytes()
        obj = _ArraysOnly(io.BytesIO(data), encoding="bytes").load()
    except (FileNotFoundError, UserError):
        raise
    except Exception as exc:  # truncated, corrupt, or malicious: all are the same to the user
        raise UserError(f"{path} is not a readable CIFAR file ({type(exc).__name__}: {exc}); "
                        "delete it to re-download, or fix --data-dir") from None
    if not isinstance(obj, dict):
        raise UserError(f"{path} is not a CIFAR file: it holds a {type(obj).__name__}, not a dict")
    return obj


def default_root() -> Path:
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "study" / "data"


def resolve_root(data_dir: str | os.PathLike | None) -> Path:
    """--data-dir, else $STUDY_DATA_DIR, else the user cache folder."""
    return Path(data_dir or os.environ.get(ENV_VAR) or default_root()).expanduser()


def _download(name: str, root: Path) -> None:
    from torchvision import datasets

    cls = datasets.CIFAR10 if name == "cifar10" else datasets.CIFAR100
    try:
        root.mkdir(parents=True, exist_ok=True)
        cls(str(root), train=True, download=True)
    except Exception as exc:
        raise UserError(
            f"{name} is not in {root} and could not be downloaded ({type(exc).__name__}: {exc}); "
            f"point --data-dir or ${ENV_VAR} at a folder holding {_LAYOUT[name][0]}/"
        ) from None


def _images(path: Path, raw: object) -> np.ndarray:
    """The format's images: a uint8 array of one 3072-byte row (32x32 RGB, channel-major) per image."""
    if not isinstance(raw, np.ndarray):
        raise UserError(f"{path}: its images are a {type(raw).__name__}, not a numpy array; the file is damaged")
    if raw.dtype != np.uint8:
        raise UserError(f"{path}: its images are {raw.dtype}, not uint8 pixels; the file is damaged")
    if raw.ndim != 2 or raw.shape[1] != IMAGE_BYTES:
        raise UserError(f"{path}: its images have shape {raw.shape}, not (N, {IMAGE_BYTES}) rows of 32x32 RGB; "
                        "the file is damaged")
    if not len(raw):
        raise UserError(f"{path} holds 0 images; the file is damaged")
    return raw.reshape(-1, 3, 32, 32)


def _labels(path: Path, raw: object, images: int, classes: int) -> np.ndarray:
    """The format's labels: a list of class numbers (an integer array is taken too), one per image, each
    in [0, classes)."""
    if isinstance(raw, np.ndarray):
        if raw.dtype.kind not in "iu":
            raise UserError(f"{path}: its labels are an array of {raw.dtype}, not class numbers; the file is damaged")
        values = raw
    elif isinstance(raw, list):
        wrong = next((v for v in raw if type(v) is not int), None)
        if wrong is not None:
            raise UserError(f"{path}: its labels hold a {type(wrong).__name__} ({str(wrong)[:40]!r}), not class "
                            "numbers; the file is damaged")
        values = np.asarray(raw, dtype=object)  # checked in Python ints below: a huge one cannot overflow
    else:
        raise UserError(f"{path}: its labels are a {type(raw).__name__}, not a list of class numbers; the file is damaged")
    if values.ndim != 1 or len(values) != images:
        raise UserError(f"{path} holds {images} images but labels of shape {tuple(values.shape)}: the file is damaged")
    low, high = int(values.min()), int(values.max())
    if low < 0 or high >= classes:
        raise UserError(f"{path} holds a label of {low if low < 0 else high}: labels are class numbers from 0 to "
                        f"{classes - 1}; the file is damaged")
    return values.astype(np.int64)


def _read_split(folder: Path, files: list[str], label_key: bytes, classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = [], []
    for file in files:
        path = folder / file
        batch = read_pickle(path)
        missing = [k.decode() for k in (b"data", label_key) if k not in batch]
        if missing:
            raise UserError(f"{path} does not hold CIFAR images and labels (no {', '.join(missing)}); the file is damaged")
        data = _images(path, batch[b"data"])
        images.append(torch.from_numpy(data.copy()))
        labels.append(torch.from_numpy(_labels(path, batch[label_key], len(data), classes)))
    return torch.cat(images), torch.cat(labels)


def _class_names(path: Path, meta: dict, key: bytes, classes: int) -> tuple[str, ...]:
    """The meta file's class names: a list of exactly as many names as the data set has classes."""
    names = meta.get(key)
    if not isinstance(names, list) or not all(isinstance(c, (bytes, str)) for c in names):
        raise UserError(f"{path}: {key.decode()} is a {type(names).__name__}, not a list of class names; "
                        "the file is damaged")
    if len(names) != classes:
        raise UserError(f"{path} names {len(names)} classes, but the data set has exactly {classes}; "
                        "the file is damaged")
    return tuple(c.decode(errors="replace") if isinstance(c, bytes) else c for c in names)


@functools.lru_cache(maxsize=4)
def load(name: str, data_dir: str | None = None) -> Images:
    """The whole data set, read once per process; downloads it when the files are missing."""
    if name not in _LAYOUT:
        raise UserError(f"unknown data set {name!r}; choose one of: {', '.join(_LAYOUT)}")
    root = resolve_root(data_dir)
    folder_name, train_files, test_file, meta_file, label_key, names_key = _LAYOUT[name]
    folder = root / folder_name
    needed = [*train_files, test_file, meta_file]
    if not all((folder / f).is_file() for f in needed):
        given = None if data_dir is None else Path(data_dir).expanduser()
        if given is not None and given.exists() and not given.is_dir():
            raise UserError(f"data directory {data_dir} is a file, not a folder; point --data-dir or ${ENV_VAR} at "
                            f"the folder holding {folder_name}/")
        if given is not None and not given.is_dir():
            raise UserError(f"data directory {data_dir} does not exist; fix --data-dir or ${ENV_VAR}")
        _download(name, root)
    missing = [f for f in needed if not (folder / f).is_file()]
    if missing:
        raise UserError(f"{folder} lacks {', '.join(missing)}; point --data-dir or ${ENV_VAR} at a complete copy")
    classes = _class_names(folder / meta_file, read_pickle(folder / meta_file), names_key, DATASET_CLASSES[name])
    train_x, train_y = _read_split(folder, train_files, label_key, len(classes))
    test_x, test_y = _read_split(folder, [test_file], label_key, len(classes))
    return Images(name, root, train_x, train_y, test_x, test_y, classes, *STATS[name])


def _stratified_take(labels: torch.Tensor, fraction: float, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(taken, rest): `fraction` of each class, rounded, at least one per class when fraction > 0."""
    taken, rest = [], []
    for c in labels.unique():
        idx = (labels == c).nonzero().flatten()
        idx = idx[torch.randperm(len(idx), generator=generator)]
        k = max(1, round(fraction * len(idx))) if len(idx) > 1 else 0
        taken.append(idx[:k])
        rest.append(idx[k:])
    return torch.cat(taken).sort().values, torch.cat(rest).sort().values


def split(labels: torch.Tensor, val_fraction: float, data_fraction: float = 1.0, seed: int = 0) -> Split:
    """Validation split carved from the training labels, stratified and seeded.

    The validation part depends on `val_fraction` and `seed` only, so runs at different
    `data_fraction` are scored on the same images.
    """
    val, rest = _stratified_take(labels, val_fraction, torch.Generator().manual_seed(seed))
    if data_fraction < 1:
        keep, _ = _stratified_take(labels[rest], data_fraction, torch.Generator().manual_seed(seed + 1))
        rest = rest[keep]
    classes = len(labels.unique())
    if len(rest) < classes:  # not even one image of each class to train on
        raise UserError(f"val_fraction={val_fraction} and data_fraction={data_fraction} leave {len(rest)} training "
                        f"images for {classes} classes; lower val_fraction or raise data_fraction")
    return Split(train=rest, val=val)

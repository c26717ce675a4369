"""The data a configuration trains on: CIFAR (study/engine/data.py) or the user's own images.

`dataset = "path/to/folder"` is a folder in torchvision's ImageFolder layout (`train/<class>/*.png`,
optional `test/<class>/...`); `dataset = "path/to/file.npz"` holds uint8 `x_train` [N, H, W, 3] and
integer `y_train` [N], optionally `x_test`, `y_test` and `classes` (the class names). Own images are
read once, resized to `image_size` px (default: the files' size, where they all agree), and held as
uint8 [N, 3, S, S] like CIFAR, with their own per-channel mean and std (over the training images).
The split, the batched augmentation and the upscale to `resolution` are the same as CIFAR's.

Everything wrong with the files is a one-line UserError naming the file; a set that would not fit in
memory fails before any image is decoded, saying how much it needs.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import zipfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from study.config import Config, is_own_dataset
from study.engine import data
from study.engine.data import Images
from study.errors import UserError

# PIL modes of 8 bits per channel, read as RGB (grayscale repeated, palette looked up, alpha dropped)
MODES = ("RGB", "RGBA", "L", "LA", "P", "CMYK", "YCbCr")
MEMORY_SHARE = 0.5  # of the host's available memory the decoded images may take
RESIZE_CHUNK = 1024  # images resized at a time from an .npz: bounds the float copy's memory


def load(config: Config) -> Images:
    """The data set `config` trains on (dataset, data_dir, image_size), read once per process."""
    if not is_own_dataset(config.dataset):
        return data.load(config.dataset, config.data_dir)
    path = Path(config.dataset).expanduser()
    if not path.exists():
        raise UserError(f"dataset {config.dataset!r} not found: give an image folder (train/<class>/*.png) "
                        "or a .npz file, relative to the folder you run from")
    images = _load_own(str(path.resolve()), path.stat().st_mtime_ns, config.image_size)
    return dataclasses.replace(images, name=config.dataset)  # as the space says it; root is where it lies


@functools.lru_cache(maxsize=2)
def _load_own(path: str, mtime_ns: int, image_size: int) -> Images:
    root = Path(path)
    if root.suffix == ".npz":
        train_x, train_y, test_x, test_y, classes = _read_npz(root, image_size)
    elif root.is_dir():
        train_x, train_y, test_x, test_y, classes = _read_folder(root, image_size)
    else:
        raise UserError(f"dataset {root} is neither a folder nor a .npz file")
    mean, std = _stats(train_x)
    return Images(str(root), root, train_x, train_y, test_x, test_y, classes, mean, std)


def available_bytes() -> int:
    """The host memory available now (Linux's MemAvailable), else the free physical pages."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def _check_memory(where: Path, images: int, size: int) -> None:
    need = images * 3 * size * size
    have = available_bytes()
    if need > MEMORY_SHARE * have:
        raise UserError(f"{where}: {images:,} images at {size}x{size} need {need / 2**30:.2f} GiB as uint8, more than "
                        f"{MEMORY_SHARE:.0%} of the {have / 2**30:.2f} GiB of memory available; set a smaller "
                        "image_size or use fewer images")


def _stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std in [0, 1] units, summed in float64 a chunk at a time."""
    total = torch.zeros(3, dtype=torch.float64)
    squares = torch.zeros(3, dtype=torch.float64)
    for i in range(0, len(images), RESIZE_CHUNK):
        x = images[i:i + RESIZE_CHUNK].to(torch.float64) / 255
        total += x.sum((0, 2, 3))
        squares += (x * x).sum((0, 2, 3))
    n = images.shape[0] * images.shape[2] * images.shape[3]
    mean = total / n
    std = (squares / n - mean**2).clamp_min(0).sqrt().clamp_min(1e-3)  # a constant channel would divide by 0
    return tuple(mean.tolist()), tuple(std.tolist())


def _check_labels(where: Path, labels: np.ndarray, classes: int, split: str) -> None:
    if len(labels) and (labels.min() < 0 or labels.max() >= classes):
        bad = labels.min() if labels.min() < 0 else labels.max()
        raise UserError(f"{where}: y_{split} holds label {bad}, outside the {classes} classes 0..{classes - 1}; "
                        "fix the labels (or the class names)")


def _check_classes(where: Path, labels: torch.Tensor, classes: tuple[str, ...]) -> None:
    if len(classes) < 2:
        raise UserError(f"{where}: {len(classes)} class; a classifier needs at least two classes of images")
    counts = torch.bincount(labels, minlength=len(classes))
    empty = [c for c, n in zip(classes, counts.tolist()) if n == 0]
    if empty:
        raise UserError(f"{where}: no training images of class {', '.join(map(repr, empty))}; add some or drop the class")


# --- .npz ---------------------------------------------------------------------------------------

def _npy_header(archive: zipfile.ZipFile, key: str) -> tuple[tuple[int, ...], np.dtype]:
    """An array's shape and dtype from its header, without reading the data."""
    with archive.open(f"{key}.npy") as f:
        major, _ = np.lib.format.read_magic(f)
        read = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
        shape, _, dtype = read(f)
    return shape, dtype


def _read_npz(where: Path, image_size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, tuple[str, ...]]:
    try:
        archive = zipfile.ZipFile(where)
        keys = {name.removesuffix(".npy") for name in archive.namelist()}
        headers = {k: _npy_header(archive, k) for k in keys}
    except Exception as exc:
        raise UserError(f"{where} is not a readable .npz file ({type(exc).__name__}: {exc}); write it with numpy.savez") from None
    for key in ("x_train", "y_train"):
        if key not in keys:
            raise UserError(f"{where} has no {key!r} (it holds {', '.join(sorted(keys)) or 'nothing'}); "
                            "save x_train (uint8 [N, H, W, 3]) and y_train (integer [N])")
    if ("x_test" in keys) != ("y_test" in keys):
        raise UserError(f"{where} holds only one of x_test and y_test; save both or neither")
    splits = ["train", "test"] if "x_test" in keys else ["train"]
    for split in splits:
        (x_shape, x_dtype), (y_shape, y_dtype) = headers[f"x_{split}"], headers[f"y_{split}"]
        if x_dtype != np.uint8 or len(x_shape) != 4 or x_shape[3] != 3:
            raise UserError(f"{where}: x_{split} is {x_dtype} of shape {x_shape}; it must be uint8 [N, H, W, 3] "
                            "(RGB, 0-255)")
        if y_dtype.kind not in "iu" or len(y_shape) != 1 or y_shape[0] != x_shape[0]:
            raise UserError(f"{where}: y_{split} is {y_dtype} of shape {y_shape}; it must be integer [{x_shape[0]}], "
                            f"one label per image of x_{split}")
    if headers["x_train"][0][0] == 0:
        raise UserError(f"{where}: x_train holds no images")
    h, w = headers["x_train"][0][1:3]
    if "x_test" in keys and headers["x_test"][0][1:3] != (h, w) and not image_size:
        raise UserError(f"{where}: x_train is {h}x{w} but x_test {headers['x_test'][0][1]}x{headers['x_test'][0][2]}; "
                        "set image_size to resize both")
    size = image_size or _square(where, h, w)
    _check_memory(where, sum(headers[f"x_{s}"][0][0] for s in splits), max(size, h, w))
    try:
        with np.load(where, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in keys}
    except Exception as exc:
        raise UserError(f"{where} is not a readable .npz file ({type(exc).__name__}: {exc})") from None
    y_train = arrays["y_train"].astype(np.int64)
    if "classes" in arrays:
        if arrays["classes"].ndim != 1 or arrays["classes"].dtype.kind not in "US":
            raise UserError(f"{where}: classes must be a 1-D array of class names (strings)")
        classes = tuple(str(c) for c in arrays["classes"])
    else:
        classes = tuple(str(c) for c in range(int(y_train.max()) + 1 if len(y_train) else 0))
    out = []
    for split in splits:
        y = arrays[f"y_{split}"].astype(np.int64)
        _check_labels(where, y, max(len(classes), 1), split)
        x = torch.from_numpy(np.ascontiguousarray(arrays[f"x_{split}"].transpose(0, 3, 1, 2)))
        out += [_resized(x, size), torch.from_numpy(y)]
    if len(splits) == 1:
        out += [torch.zeros(0, 3, size, size, dtype=torch.uint8), torch.zeros(0, dtype=torch.int64)]
    _check_classes(where, out[1], classes)
    return out[0], out[1], out[2], out[3], classes


def _square(where: Path, h: int, w: int) -> int:
    if h != w:
        raise UserError(f"{where}: the images are {h}x{w}, not square; set image_size to resize them to a square")
    return h


def _resized(x: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 [N, 3, H, W] -> uint8 [N, 3, size, size], antialiased bilinear, a chunk at a time."""
    if x.shape[-2:] == (size, size):
        return x
    parts = [F.interpolate(x[i:i + RESIZE_CHUNK].float(), size=(size, size), mode="bilinear", antialias=True,
                           align_corners=False).round_().clamp_(0, 255).to(torch.uint8)
             for i in range(0, len(x), RESIZE_CHUNK)]
    return torch.cat(parts)


# --- image folder -------------------------------------------------------------------------------

def _files(where: Path, split: str, classes: list[str] | None) -> tuple[list[tuple[str, int]], list[str]]:
    """(path, class index) of every image under where/split/<class>/, and the class names, with
    torchvision's ImageFolder rules (sorted class folders, its image extensions)."""
    from torchvision.datasets.folder import IMG_EXTENSIONS, find_classes, make_dataset

    folder = where / split
    try:
        found, _ = find_classes(str(folder))
    except FileNotFoundError:
        found = []
    if classes is not None and found != classes:
        raise UserError(f"{folder} has classes {found} but train/ has {classes}; give test/ the same class folders")
    names = classes if classes is not None else found
    if classes is None and len(names) < 2:
        raise UserError(f"{folder} holds {len(names)} class folder(s) ({', '.join(names) or 'none'}); a classifier "
                        "needs at least two: train/<class>/<image> for each class")
    files = make_dataset(str(folder), {c: i for i, c in enumerate(names)}, extensions=IMG_EXTENSIONS, allow_empty=True)
    if not files:
        raise UserError(f"{folder} holds no images ({', '.join(IMG_EXTENSIONS)}) in its class folders")
    return files, names


def _read_folder(where: Path, image_size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, tuple[str, ...]]:
    from PIL import Image

    if not (where / "train").is_dir():
        raise UserError(f"{where} has no train/ folder; lay it out as train/<class>/<image> (and optionally test/)")
    train, classes = _files(where, "train", None)
    test, _ = _files(where, "test", classes) if (where / "test").is_dir() else ([], classes)
    everything = train + test
    # headers only: every file's mode and size, before any image is decoded
    modes: dict[str, str] = {}
    sizes: dict[tuple[int, int], str] = {}
    for file, _ in everything:
        try:
            with Image.open(file) as img:
                modes.setdefault(img.mode, file)
                sizes.setdefault(img.size, file)
        except Exception as exc:
            raise UserError(f"{file} is not a readable image ({type(exc).__name__}: {exc}); remove or replace it") from None
    if len(modes) > 1:
        shown = "; ".join(f"{mode} (e.g. {file})" for mode, file in modes.items())
        raise UserError(f"{where} mixes image modes: {shown}; convert every image to one mode (RGB)")
    mode = next(iter(modes))
    if mode not in MODES:
        raise UserError(f"{where}: the images are in mode {mode}; convert them to 8-bit RGB (read: {', '.join(MODES)})")
    if not image_size and len(sizes) > 1:
        shown = ", ".join(f"{w}x{h}" for w, h in list(sizes)[:3])
        raise UserError(f"{where}: the images have {len(sizes)} sizes ({shown}, ...); set image_size to resize them all")
    size = image_size or _square(where, *reversed(next(iter(sizes))))
    _check_memory(where, len(everything), size)

    def read(files: list[tuple[str, int]]) -> tuple[torch.Tensor, torch.Tensor]:
        x = np.empty((len(files), size, size, 3), np.uint8)
        for i, (file, _) in enumerate(files):
            with Image.open(file) as img:
                img = img.convert("RGB")
                x[i] = np.asarray(img if img.size == (size, size) else img.resize((size, size), Image.BILINEAR))
        y = torch.tensor([label for _, label in files], dtype=torch.int64)
        return torch.from_numpy(x.transpose(0, 3, 1, 2).copy()), y

    train_x, train_y = read(train)
    test_x, test_y = read(test)
    _check_classes(where / "train", train_y, tuple(classes))
    return train_x, train_y, test_x, test_y, tuple(classes)

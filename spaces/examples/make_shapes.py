"""Write a small image folder for the example spaces: circles, squares and triangles as 32x32 PNGs.

    python spaces/examples/make_shapes.py            # runs/shapes/{train,test}/<class>/*.png
    python spaces/examples/make_shapes.py DIR --train 200 --test 50 --size 32

Each image is one shape of random size, position and colour on a noisy background of another colour,
drawn with PIL; the same arguments always write the same images (seeded).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

CLASSES = ("circle", "square", "triangle")


def shape(kind: str, size: int, rng: np.random.Generator) -> Image.Image:
    background = tuple(int(c) for c in rng.integers(0, 256, 3))
    colour = tuple((np.array(background) + rng.integers(80, 176, 3)) % 256)
    noise = rng.normal(0, 12, (size, size, 3))
    img = Image.fromarray(np.clip(np.array(background) + noise, 0, 255).astype(np.uint8))
    r = rng.uniform(0.2, 0.4) * size
    cx, cy = rng.uniform(r, size - r, 2)
    draw = ImageDraw.Draw(img)
    if kind == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=tuple(int(c) for c in colour))
    elif kind == "square":
        draw.rectangle([cx - r, cy - r, cx + r, cy + r], fill=tuple(int(c) for c in colour))
    else:
        draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=tuple(int(c) for c in colour))
    return img


def write(folder: Path, train: int, test: int, size: int, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for split, count in (("train", train), ("test", test)):
        for kind in CLASSES:
            out = folder / split / kind
            out.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                shape(kind, size, rng).save(out / f"{i:04d}.png")
    return folder


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folder", nargs="?", default="runs/shapes", help="where to write (default runs/shapes)")
    p.add_argument("--train", type=int, default=200, help="training images per class (default 200)")
    p.add_argument("--test", type=int, default=50, help="test images per class (default 50)")
    p.add_argument("--size", type=int, default=32, help="px per side (default 32)")
    args = p.parse_args()
    folder = write(Path(args.folder), args.train, args.test, args.size)
    print(f"wrote {len(CLASSES)} classes x {args.train} train + {args.test} test images to {folder}/")


if __name__ == "__main__":
    main()

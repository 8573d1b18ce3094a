"""BatchLab's bundled demo data set: five shape classes drawn on cluttered, noisy backgrounds.

No data set can be downloaded, so the app draws its own. The task is tuned so the default
CNN needs several epochs to learn it (random colour, size, position and rotation over
gradients, stray lines, specks and pixel noise) yet passes 90% validation accuracy on a CPU
in minutes when trained at DEMO_IMAGE_SIZE, which makes the batch-size comparison visible.
Harder variants tried (outlined shapes, bright or mixed backgrounds) left the seed CNN at
chance for many epochs. The manifest recommends DEMO_IMAGE_SIZE, so ``image_size`` auto uses it.

Every image comes from its own generator seeded by ``(seed, class, index)``, so the bytes
are the same on every run and image ``n`` does not depend on ``per_class``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
from PIL import Image, ImageDraw

from engine.atomic import atomic_dir, write_json

DEMO_NAME = "shapes"
CLASSES = ("circle", "cross", "square", "star", "triangle")
DEFAULT_PER_CLASS = 500
# The image size to train the demo at: the seed CNN learns it past 90% in minutes on a CPU. At 64 px
# and more its Dense(512) sees 4-16x more inputs, and Adam's first steps at lr 0.001 then often
# push most of its ReLUs dead (measured: 80% dead after one epoch, val accuracy stuck at chance).
DEMO_IMAGE_SIZE = 32
MANIFEST_NAME = ".demo-data.json"  # hidden, so folder-per-class loaders never see it
FORMAT_VERSION = 1

_SUPERSAMPLE = 2  # draw large, then shrink: smooth edges without a slow anti-aliasing pass
_NOISE_SIGMA = 8.0
_LUMA = np.array([0.299, 0.587, 0.114])  # perceived brightness of an RGB colour

Progress = Callable[[int, int], None]


def generate_demo_data(
    dest_root: Path | str = "data",
    *,
    per_class: int = DEFAULT_PER_CLASS,
    image_size: int = 64,
    seed: int = 0,
    progress: Optional[Progress] = None,
    force: bool = False,
) -> Path:
    """Write ``dest_root/shapes/<class>/<n>.png`` and return that folder.

    A complete set made with the same settings is reused unless ``force``. The set is built
    in a hidden sibling folder and renamed into place, so an interrupted run leaves either
    the previous set or nothing, never a partial set that looks complete.
    """
    if isinstance(per_class, bool) or not isinstance(per_class, int) or per_class < 1:
        raise ValueError(f"demo data per class: {per_class!r} must be a whole number of at least 1")
    if isinstance(image_size, bool) or not isinstance(image_size, int) or not 16 <= image_size <= 1024:
        raise ValueError(f"demo data image size: {image_size!r} must be a whole number between 16 and 1024")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"demo data seed: {seed!r} must be a whole number of at least 0")

    target = Path(dest_root) / DEMO_NAME
    settings = _settings(per_class, image_size, seed)
    manifest = read_manifest(target) or {}
    if not force and {k: manifest.get(k) for k in settings} == settings and demo_data_exists(dest_root):
        return target

    total = per_class * len(CLASSES)
    done = 0
    with atomic_dir(target) as tmp:
        for class_index, name in enumerate(CLASSES):
            class_dir = tmp / name
            class_dir.mkdir()
            for n in range(per_class):
                rng = np.random.default_rng([seed, class_index, n])
                _write_image(render_shape(name, image_size, rng), class_dir / f"{n:05d}.png")
                done += 1
                if progress is not None:
                    progress(done, total)
        # Last: its presence means every image is there. "recommended" is what ``image_size`` auto trains at.
        write_json(tmp / MANIFEST_NAME, {**settings, "recommended": {"image_size": DEMO_IMAGE_SIZE}})
    return target


def demo_data_exists(dest_root: Path | str = "data") -> bool:
    """True when ``dest_root/shapes`` holds a finished set: manifest present and every image on disk."""
    target = Path(dest_root) / DEMO_NAME
    manifest = read_manifest(target)
    if manifest is None:
        return False
    per_class = manifest.get("per_class")
    if manifest.get("classes") != list(CLASSES) or not isinstance(per_class, int):
        return False
    for name in CLASSES:
        class_dir = target / name
        if not class_dir.is_dir() or sum(1 for _ in class_dir.glob("*.png")) != per_class:
            return False
    return True


def render_shape(name: str, size: int, rng: np.random.Generator) -> Image.Image:
    """One ``size``x``size`` RGB image of shape ``name``, all randomness drawn from ``rng``."""
    big = size * _SUPERSAMPLE
    background = _background_colour(rng)
    image = Image.fromarray(_gradient(size, background, rng), "RGB").resize((big, big), Image.Resampling.BILINEAR)
    draw = ImageDraw.Draw(image)
    _clutter(draw, big, rng)

    radius = big * rng.uniform(0.20, 0.34)
    margin = radius * 1.05
    cx, cy = rng.uniform(margin, big - margin, size=2)
    angle = rng.uniform(0.0, 2.0 * math.pi)
    colour = _contrasting_colour(background, rng)
    if name == "circle":
        draw.ellipse((cx - radius, cy - radius, cx + radius, cy + radius), fill=colour)
    else:
        draw.polygon(_polygon(name, cx, cy, radius, angle, rng), fill=colour)

    small = np.asarray(image.resize((size, size), Image.Resampling.BOX), dtype=np.float32)
    small += rng.standard_normal(small.shape, dtype=np.float32) * _NOISE_SIGMA
    return Image.fromarray(np.clip(small, 0, 255).astype(np.uint8), "RGB")


def _write_image(image: Image.Image, path: Path) -> None:
    # No metadata, fixed compression: identical settings give identical bytes.
    image.save(path, format="PNG", compress_level=1)


def _settings(per_class: int, image_size: int, seed: int) -> dict[str, Any]:
    return {
        "format_version": FORMAT_VERSION,
        "classes": list(CLASSES),
        "per_class": per_class,
        "image_size": image_size,
        "seed": seed,
    }


def read_manifest(target: Path) -> Optional[dict[str, Any]]:
    """The manifest of the demo set in ``target``, or None when there is none (or it is unreadable)."""
    try:
        data = json.loads((target / MANIFEST_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _background_colour(rng: np.random.Generator) -> np.ndarray:
    """A dark background of any hue, so every shape stands out as the brighter region."""
    while True:
        colour = rng.uniform(0, 110, size=3)
        if 10 <= float(_LUMA @ colour) <= 60:
            return colour


def _gradient(size: int, base: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A gentle colour ramp in a random direction: the background is never one flat colour."""
    direction = rng.uniform(0.0, 2.0 * math.pi)
    ramp = np.linspace(-1.0, 1.0, size, dtype=np.float32)
    field = np.cos(direction) * ramp[None, :] + np.sin(direction) * ramp[:, None]
    swing = rng.uniform(-15, 15, size=3).astype(np.float32)
    pixels = base.astype(np.float32) + field[:, :, None] * swing
    return np.clip(pixels, 0, 255).astype(np.uint8)


def _clutter(draw: ImageDraw.ImageDraw, big: int, rng: np.random.Generator) -> None:
    """Stray lines and specks: edges and colours unrelated to the class, for the net to ignore."""
    n_lines, n_specks = int(rng.integers(2, 6)), int(rng.integers(3, 9))
    ends = rng.uniform(0, big, size=(n_lines, 4)).tolist()
    widths = rng.integers(1, 2 * _SUPERSAMPLE + 1, size=n_lines).tolist()
    centres = rng.uniform(0, big, size=(n_specks, 2)).tolist()
    halves = (rng.uniform(1, 2.5, size=n_specks) * _SUPERSAMPLE).tolist()
    colours = [tuple(c) for c in rng.integers(0, 256, size=(n_lines + n_specks, 3)).tolist()]
    for line, width, colour in zip(ends, widths, colours):
        draw.line(line, fill=colour, width=width)
    for (x, y), r, colour in zip(centres, halves, colours[n_lines:]):
        draw.rectangle((x - r, y - r, x + r, y + r), fill=colour)


def _contrasting_colour(background: np.ndarray, rng: np.random.Generator) -> tuple[int, int, int]:
    """A random hue clearly brighter than the background.

    Colour alone is no clue to the class. Always brighter keeps the shape's edges of one
    polarity: one thing fewer for a net trained from scratch to learn.
    """
    floor = float(_LUMA @ background) + 90
    while True:
        colour = rng.integers(0, 256, size=3)
        if float(_LUMA @ colour) > floor:
            return tuple(int(c) for c in colour)


def _polygon(
    name: str, cx: float, cy: float, radius: float, angle: float, rng: np.random.Generator
) -> list[tuple[float, float]]:
    """Corners of a polygon class, as (radius fraction, angle) pairs, then rotated and placed."""
    if name == "square":
        polar = [(1.0, math.pi / 4 + k * math.pi / 2) for k in range(4)]
    elif name == "triangle":
        polar = [(1.0, math.pi / 2 + k * 2 * math.pi / 3) for k in range(3)]
    elif name == "star":
        inner = rng.uniform(0.38, 0.5)
        polar = [(1.0 if k % 2 == 0 else inner, math.pi / 2 + k * math.pi / 5) for k in range(10)]
    elif name == "cross":
        half = rng.uniform(0.18, 0.28)  # half the arm width, as a fraction of the radius
        reach = math.hypot(1.0, half)
        polar = []
        for k in range(4):
            base = k * math.pi / 2
            polar += [
                (reach, base - math.atan2(half, 1.0)),
                (reach, base + math.atan2(half, 1.0)),
                (math.hypot(half, half), base + math.pi / 4),
            ]
    else:
        raise ValueError(f"demo data class: {name!r} is not one of {', '.join(CLASSES)}")
    return [
        (cx + radius * r * math.cos(a + angle), cy - radius * r * math.sin(a + angle))
        for r, a in polar
    ]

"""Helpers the tests import: real image folders and free local ports (fixtures live in conftest.py)."""

from __future__ import annotations

import socket
from pathlib import Path

import numpy as np


def write_image_folder(root: Path, classes: int = 3, per_class: int = 8, size: int = 32, seed: int = 0) -> Path:
    """Classes differ by dominant colour and stripe direction, so a tiny CNN can learn them."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    colours = [(220, 40, 40), (40, 200, 60), (40, 60, 220), (220, 200, 40), (200, 40, 200)]
    for c in range(classes):
        folder = root / f"class_{c}"
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = rng.integers(0, 60, size=(size, size, 3)).astype(np.int16)
            pixels += np.array(colours[c % len(colours)], dtype=np.int16)
            if c % 2:
                pixels[:, ::4] = 255
            else:
                pixels[::4, :] = 255
            Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(folder / f"img_{i:03d}.png")
    return root


def free_ports(count: int) -> list[int]:
    """Ports on 127.0.0.1 that were free a moment ago, for a cluster of local worker processes."""
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports

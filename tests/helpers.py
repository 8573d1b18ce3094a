"""Helpers the tests import: real image folders, free local ports and a private X server (fixtures live in
conftest.py)."""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from typing import Iterator

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


@contextlib.contextmanager
def running_xvfb(size: str = "1366x768") -> Iterator[str]:
    """A private Xvfb (``size`` like "1024x640") on a display number it picks itself (-displayfd); yields the
    DISPLAY value and stops the server afterwards. Fails (not skips) without Xvfb: CI installs it."""
    if shutil.which("Xvfb") is None:
        raise AssertionError("Xvfb is not installed: apt-get install xvfb (CI installs it; these tests must run)")
    read_end, write_end = os.pipe()
    with tempfile.TemporaryFile() as log:
        server = subprocess.Popen(["Xvfb", "-displayfd", str(write_end), "-screen", "0", f"{size}x24",
                                   "-nolisten", "tcp"], pass_fds=(write_end,), stdout=log, stderr=log)
        os.close(write_end)
        try:
            ready, _, _ = select.select([read_end], [], [], 30)
            number = os.read(read_end, 64).decode().strip() if ready else ""
            if not number.isdigit():
                log.seek(0)
                raise AssertionError(f"Xvfb did not start: {log.read().decode(errors='replace')[-2000:]}")
            yield f":{number}"
        finally:
            os.close(read_end)
            server.terminate()
            server.wait(10)

"""Shared fixtures: tiny real image folders written by the tests themselves (helpers in tests/helpers.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.helpers import write_image_folder

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture
def tiny_data(tmp_path: Path) -> Path:
    """3 classes x 8 PNGs of 32 px: trains in a second or two."""
    return write_image_folder(tmp_path / "data")

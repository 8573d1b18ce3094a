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


@pytest.fixture(scope="session")
def trained_experiment(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One real experiment for every test that only reads one (export, evaluation, prediction, the window's
    views): 3 classes x 12 PNGs, batch sizes 4 and 8, 2 epochs at 32 px. Laid out as ROOT/data and
    ROOT/out/exp. Tests that write into it (exports) use their own target names."""
    from engine.config import ExperimentConfig
    from engine.study.launch import run_experiment

    root = tmp_path_factory.mktemp("trained")
    data = write_image_folder(root / "data", classes=3, per_class=12)
    config = ExperimentConfig(data_dir=str(data), batch_sizes=[4, 8], epochs=2, image_size=32, augment=False,
                              out=str(root / "out"), name="exp")
    return run_experiment(config)

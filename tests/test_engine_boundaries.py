"""The engine stays importable without Qt, and user errors come out as one clear line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from engine.config import ConfigError, ExperimentConfig

ROOT = Path(__file__).resolve().parents[1]


def test_every_engine_module_imports_without_qt():
    """Import every module under engine/ in a fresh process: none may pull in Qt or pyqtgraph."""
    code = ("import importlib, pkgutil, sys, engine\n"
            "names = [m.name for m in pkgutil.walk_packages(engine.__path__, 'engine.')\n"
            "         if not m.name.endswith('__main__')]\n"
            "for name in names: importlib.import_module(name)\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('PySide6', 'pyqtgraph', 'shiboken6', 'gui'))\n"
            "print(len(names), bad); sys.exit(1 if bad or len(names) < 40 else 0)")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_import_contracts_hold():
    """import-linter: the engine never imports the window (not even inside a function), the window and
    the command line are independent, and the engine's sub-packages form layers without cycles."""
    done = subprocess.run([str(Path(sys.executable).parent / "lint-imports"), "--no-cache"], cwd=ROOT,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 kept, 0 broken" in done.stdout


@pytest.mark.parametrize("overrides, message", [
    ({"batch_sizes": []}, "batch sizes: give at least one"),
    ({"batch_sizes": [32, 0]}, "batch sizes: 0 is not a positive whole number"),
    ({"batch_sizes": [32, 32, 8]}, "batch sizes: 32 given more than once"),
    ({"epochs": 0}, "epochs: 0 must be a whole number between 1 and 100000"),
    ({"val_split": 1.0}, "validation split: 1.0 must be between 0 and 1"),
    ({"lr": -1.0}, "learning rate: -1.0 must be positive"),
    ({"image_size": 8}, "image size: 8 must be a whole number between 16 and 1024"),
    ({"budget": "time"}, "budget: 'time' needs a positive number of seconds"),
    ({"precision": "fp8"}, "precision: 'fp8' is not one of auto, fp32, mixed"),
    ({"lrs": [0.001, 0.01], "lr_grid": 3}, "learning rates: give explicit learning rates or an lr grid above 1"),
    ({"tune": "halving", "budget": "time", "budget_seconds": 60.0, "lr_grid": 3},
     "tuning: halving needs an epochs or steps budget"),
    ({"lr_grid": 10}, "lr grid: 10 must be a whole number between 1 and 9"),
    ({"lr_grid_factor": 1.0}, "grid factor: 1.0 must be more than 1"),
    ({"halving_eta": 1}, "halving eta: 1 must be a whole number between 2 and 100"),
    ({"model": "vgg16"}, "model: 'vgg16' is neither a built-in model"),
    ({"weights": "imagenet"}, "weights: 'imagenet' needs a Keras Applications backbone"),
    ({"model": "resnet50", "image_size": 24}, "image size: 24 px is below resnet50's minimum of 32 px; use 224"),
])
def test_bad_settings_name_the_setting(overrides, message):
    values = {"data_dir": "x", "batch_sizes": [32]}
    values.update(overrides)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        ExperimentConfig(**values).validate()


def run_cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "main.py"), *args], cwd=cwd, capture_output=True, text=True)


def test_missing_folder_is_one_line_and_exit_2(tmp_path):
    done = run_cli("run", str(tmp_path / "nope"), "--batch-sizes", "8", "--out", str(tmp_path / "o"))
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert str(tmp_path / "nope") in done.stderr and done.stderr.count("\n") == 1


def test_split_leaving_a_class_without_validation_is_refused(tmp_path):
    from tests.helpers import write_image_folder

    data = write_image_folder(tmp_path / "data", per_class=2)
    done = run_cli("run", str(data), "--batch-sizes", "8", "--val-split", "0.1", "--image-size", "32",
                   "--out", str(tmp_path / "o"))
    assert done.returncode == 2, done.stderr
    assert "class 'class_0'" in done.stderr and "none for validation" in done.stderr
    out = tmp_path / "o"
    assert not out.exists() or [p.name for p in out.iterdir() if not p.name.startswith(".")] == []


def test_bad_batch_size_on_the_command_line(tmp_path):
    done = run_cli("run", str(tmp_path), "--batch-sizes", "32", "x")
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("error: argument --batch-sizes: 'x' is not a positive whole number; type e.g. 32 256")
    assert done.stderr.rstrip().endswith("(see: main.py run --help)")


def test_check_lists_the_skipped_files_before_a_fatal_class_error(tmp_path):
    from tests.helpers import write_image_folder

    data = write_image_folder(tmp_path / "data", classes=2, per_class=3)
    for image in (data / "class_1").iterdir():
        image.write_bytes(b"not an image")
    done = run_cli("check", str(data))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.startswith("error: class 'class_1' has no usable image")
    assert "class_1/img_000.png" in done.stdout and "not an image" in done.stdout

"""`main.py export` and `main.py predict` as a user runs them: real subprocesses, real exit codes."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


MAIN = Path(__file__).resolve().parent.parent / "main.py"


NATIVE_LOG = re.compile(r"^(WARNING: All log messages before absl::InitializeLog|[IWEF]\d{4} \d\d:\d\d:\d\d)")


def user_lines(stderr: str) -> list[str]:
    """What BatchLab itself printed: TensorFlow's C++ runtime logs a CUDA notice at import whatever
    TF_CPP_MIN_LOG_LEVEL says (seen on CI machines), and that is not ours to count."""
    return [line for line in stderr.strip().splitlines() if not NATIVE_LOG.match(line)]


def run_main(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([sys.executable, str(MAIN), *args], capture_output=True, text=True, timeout=300, env=env)


@pytest.fixture
def experiment(trained_experiment: Path) -> Path:
    return trained_experiment


def test_export_then_predict_from_the_command_line(experiment: Path, tmp_path: Path) -> None:
    target = tmp_path / "exported"
    done = run_main("export", str(experiment), "--batch-size", "4", "--format", "keras", "--to", str(target))
    assert done.returncode == 0, done.stderr
    assert "predictions match the checkpoint" in done.stdout
    assert (target / "model.keras").is_file() and (target / "batchlab_export.json").is_file()

    images = tmp_path / "images"  # a copy: the experiment and its data folder are shared with other tests
    shutil.copytree(experiment.parent.parent / "data" / "class_0", images)
    (images / "notes.txt").write_text("not an image")
    shown = run_main("predict", str(target), str(images))
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.strip().splitlines()
    assert len(lines) == 13  # 12 images and the text file
    assert all(line.split(": ", 1)[1].split(" (")[0] in ("class_0", "class_1", "class_2") for line in lines if "img_" in line)
    assert any("notes.txt: skipped (not an image" in line for line in lines)

    # The same images through the experiment folder give the same classes and confidences.
    again = run_main("predict", str(experiment), str(images), "--batch-size", "4")
    assert again.returncode == 0, again.stderr
    assert again.stdout == shown.stdout.replace(str(target), str(experiment))


def test_export_refusal_exits_non_zero_with_one_line(experiment: Path, tmp_path: Path) -> None:
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "thesis.tex").write_text("precious")
    done = run_main("export", str(experiment), "--format", "keras", "--to", str(occupied))
    assert done.returncode == 1
    assert user_lines(done.stderr) == [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(user_lines(done.stderr)) == 1 and "holds no earlier export" in done.stderr

    missing = run_main("export", str(experiment), "--batch-size", "512", "--to", str(tmp_path / "new"))
    assert missing.returncode == 1 and "no checkpoint for batch size 512" in missing.stderr
    corrupt = tmp_path / "bad.keras"
    corrupt.write_bytes(b"PK\x03\x04 broken")
    bad = run_main("predict", str(corrupt), str(experiment.parent.parent / "data"))
    assert bad.returncode == 1 and "bad.keras" in bad.stderr and "Traceback" not in bad.stderr

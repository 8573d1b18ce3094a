"""TensorFlow's own log lines stay off the terminal unless --verbose; real errors always get through."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from engine.cli.main import build_parser
from engine.native_logs import VERBOSE_VARIABLE, NoiseFilter
from tests.helpers import write_image_folder

ROOT = Path(__file__).resolve().parent.parent

# Lines seen on this project's CPU machines (TensorFlow 2.21, ai-edge-litert).
ABSL_WARNING = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
NO_DRIVER = ("I0000 00:00:1796194159.268981   22022 cudart_stub.cc:31] Could not find cuda drivers on your machine, "
             "GPU will not be used.")
CU_INIT = ("E0000 00:00:1796194167.109821   22022 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error: "
           "Failed call to cuInit: UNKNOWN ERROR (303)")
CPU_GUARD = ("I0000 00:00:1796194176.724157   22412 cpu_feature_guard.cc:227] This TensorFlow binary is optimized to "
             "use available CPU instructions in performance-critical operations.")
CPU_GUARD_2 = ("To enable the following instructions: AVX2 FMA, in other operations, rebuild TensorFlow with the "
               "appropriate compiler flags.")
ONEDNN = ("I0000 00:00:1796194176.606549   22412 port.cc:153] oneDNN custom operations are on. You may see slightly "
          "different numerical results due to floating-point round-off errors from different computation orders.")
XNNPACK = "INFO: Created TensorFlow Lite XNNPACK delegate for CPU."
NOISE = [ABSL_WARNING, NO_DRIVER, CPU_GUARD, CPU_GUARD_2, ONEDNN, ABSL_WARNING, NO_DRIVER, CU_INIT, XNNPACK]

# Any line TensorFlow, absl or LiteRT writes itself, known or not: the tests look for all of them.
NATIVE_LOG = re.compile(r"^[IWEF]\d{4} \d\d:\d\d:\d\d\.\d+\s+\d+ \S+:\d+\]|absl::|XNNPACK|TensorFlow binary|"
                        r"To enable the following instructions|oneDNN|cuInit|cuda drivers", re.MULTILINE)


def kept(lines: list[str]) -> list[str]:
    noise = NoiseFilter()
    return [line for line in lines if noise.keep(line + "\n")]


def test_the_known_start_up_lines_are_dropped() -> None:
    assert kept(NOISE) == []


def test_everything_else_gets_through() -> None:
    real = [
        "E0000 00:00:1796194167.109821   22022 bfc_allocator.cc:485] Allocator (GPU_0_bfc) ran out of memory",
        "F0000 00:00:1796194167.109821   22022 tensor_shape.cc:587] Check failed: size >= 0 (-1 vs. 0)",
        "Traceback (most recent call last):",
        '  File "main.py", line 11, in <module>',
        "To enable the following instructions: this line follows no dropped line, so it is kept",
        "error: data folder not found: /nowhere",
        "",
    ]
    assert kept(real) == real
    assert kept([CPU_GUARD, "Traceback (most recent call last):"]) == ["Traceback (most recent call last):"]


def test_a_failed_cuinit_is_kept_where_a_driver_exists() -> None:
    gpu_machine = CU_INIT.replace("UNKNOWN ERROR (303)", "CUDA_ERROR_SYSTEM_DRIVER_MISMATCH")
    assert kept([ABSL_WARNING, gpu_machine]) == [gpu_machine]  # the one line saying why the GPU is unused
    hidden = CU_INIT.replace("UNKNOWN ERROR (303)", "CUDA_ERROR_NO_DEVICE: no CUDA-capable device is detected")
    assert kept([hidden]) == []  # CUDA_VISIBLE_DEVICES=-1 (a CPU child process): nothing to use anyway
    assert kept([NO_DRIVER, CU_INIT]) == []


@pytest.mark.parametrize("argv, verbose", [
    (["run", "data", "--batch-sizes", "4"], False),
    (["--verbose", "run", "data", "--batch-sizes", "4"], True),
    (["run", "data", "--batch-sizes", "4", "--verbose"], True),
    (["probe", "data", "--verbose"], True),
])
def test_verbose_before_or_after_the_command(argv: list[str], verbose: bool) -> None:
    assert build_parser().parse_args(argv).verbose is verbose


FATAL_IN_SCOPE = """
import os, sys
from engine.native_logs import filtered_stderr
with filtered_stderr():
    os.write(2, {noise!r}.encode())
    print("python says hello", file=sys.stderr, flush=True)
    os.write(2, b"F0000 00:00:1.2   7 tensor_shape.cc:587] Check failed: size >= 0\\n")
    os.abort()
"""


@pytest.mark.parametrize("verbose", [False, True])
def test_a_fatal_line_survives_an_abort_inside_the_filter(verbose: bool) -> None:
    """The filter is a process of its own: it drains the pipe even when TensorFlow kills ours."""
    env = {**quiet_env(), **({VERBOSE_VARIABLE: "1"} if verbose else {})}
    script = FATAL_IN_SCOPE.format(noise="\n".join(NOISE) + "\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == -6  # SIGABRT
    assert "python says hello\n" in done.stderr
    assert "Check failed: size >= 0" in done.stderr
    assert bool(NATIVE_LOG.search(done.stderr.replace("Check failed", ""))) is verbose, done.stderr


# ---------------------------------------------------------------- real commands, fresh processes


def quiet_env() -> dict[str, str]:
    """A new user's shell: no TF_CPP_MIN_LOG_LEVEL (the test conftest sets one), no verbose choice."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    env.pop(VERBOSE_VARIABLE, None)
    return env


def command(*args: str, module: bool = False) -> subprocess.CompletedProcess:
    entry = ["-m", "engine.cli"] if module else ["main.py"]
    done = subprocess.run([sys.executable, *entry, *args], cwd=ROOT, env=quiet_env(), capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return done


def native_lines(done: subprocess.CompletedProcess) -> list[str]:
    return [line for line in (done.stdout + done.stderr).splitlines() if NATIVE_LOG.search(line)]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("native_logs")
    data = write_image_folder(root / "data")
    done = command("run", str(data), "--batch-sizes", "4", "--epochs", "1", "--image-size", "32",
                   "--out", str(root / "out"))
    experiment = next((root / "out").glob("*/experiment.json")).parent
    return {"root": root, "data": data, "experiment": experiment, "run": done}


@pytest.mark.slow
def test_run_prints_no_tensorflow_log_line(trained) -> None:
    assert "Experiment completed" in trained["run"].stdout
    assert native_lines(trained["run"]) == []


@pytest.mark.slow
def test_run_verbose_shows_them(trained) -> None:
    done = command("run", str(trained["data"]), "--batch-sizes", "4", "--epochs", "1", "--image-size", "32",
                   "--out", str(trained["root"] / "verbose"), "--verbose")
    assert ABSL_WARNING in done.stderr
    assert native_lines(done)


@pytest.mark.slow
def test_probe_prints_no_tensorflow_log_line(trained) -> None:
    done = command("probe", str(trained["data"]), "--batch-sizes", "2", "4", "--steps", "2", "--image-size", "32",
                   module=True)  # python -m engine.cli: the way the cluster chief is started
    assert "every batch size tried fits, up to 4" in done.stdout
    assert native_lines(done) == []


@pytest.mark.slow
def test_export_and_predict_print_no_tensorflow_log_line(trained) -> None:
    export = trained["root"] / "litert"
    done = command("export", str(trained["experiment"]), "--format", "litert", "--to", str(export))
    assert "predictions match the checkpoint" in done.stdout
    assert native_lines(done) == []
    image = str(trained["data"] / "class_0" / "img_000.png")
    for model in (export, trained["experiment"]):  # LiteRT (its XNNPACK line), then Keras (TensorFlow's)
        done = command("predict", str(model), image)
        assert "1 of 1 images classified" in done.stderr
        assert native_lines(done) == []


@pytest.mark.slow
def test_a_parallel_run_child_is_quiet_and_its_errors_still_show() -> None:
    from engine.scale.distribute import CHILD_COMMAND, child_environment

    env = {**child_environment("CPU:0"), **{k: v for k, v in quiet_env().items() if k == "PYTHONPATH"}}
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    done = subprocess.run([sys.executable, "-c", CHILD_COMMAND], cwd=ROOT, env=env, input="not a spec\n",
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 1
    assert "Traceback" in done.stderr and "JSONDecodeError" in done.stderr, done.stderr
    assert NATIVE_LOG.search(done.stderr) is None, done.stderr


def test_the_filter_process_runs_this_file_alone() -> None:
    """``python -I -S engine/native_logs.py``: standard library only, noise in, the rest out."""
    source = (ROOT / "engine" / "native_logs.py").read_text()
    imports = re.findall(r"^(?:from|import) (\S+)", source, re.MULTILINE)
    assert imports and all(name.split(".")[0] in sys.stdlib_module_names or name == "__future__"
                           for name in imports), imports
    noise = "\n".join(NOISE).encode()
    done = subprocess.run([sys.executable, "-I", "-S", str(ROOT / "engine" / "native_logs.py")],
                          input=b"keep me\n" + noise + b"\nand me, unterminated", capture_output=True, timeout=60)
    assert (done.returncode, done.stdout, done.stderr) == (0, b"keep me\nand me, unterminated", b"")

"""One definition per setting: the config's specs drive validation, --help, the flags, the TOML file,
the worker's command line, and ``image_size`` auto (the demo's manifest says 32)."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from engine.cli.common import command, program_name
from engine.cli.main import build_parser
from engine.cli.run import config_from_args
from engine.config import (
    DEFAULTS,
    FALLBACK_IMAGE_SIZE,
    GROUPS,
    KINDS,
    OPTIONAL,
    REQUIRED,
    SETTINGS,
    ConfigError,
    ExperimentConfig,
    command_line,
    default_text,
    parse_batch_sizes,
    parse_devices,
    parse_lrs,
)
from engine.config_file import read_config, write_config
from engine.data.demo import MANIFEST_NAME, generate_demo_data
from engine.data.recommend import recommended_image_size, resolve_image_size, with_image_size
from engine.events import LogMessage
from tests.helpers import write_image_folder

ROOT = Path(__file__).resolve().parents[1]
README_FLAGS = ("--batch-sizes", "--epochs", "--patience", "--image-size", "--val-split", "--lr", "--seed",
                "--no-augment", "--out", "--precision", "--lr-scaling", "--lr-reference-batch", "--warmup-epochs",
                "--budget", "--budget-seconds", "--repeats", "--target-accuracy", "--noise-scale", "--name",
                "--devices", "--parallel")


def everything_set() -> ExperimentConfig:
    """A valid config where every setting differs from its default (and text needs quoting)."""
    return ExperimentConfig(
        data_dir="/data/für Bilder/\"x\"", batch_sizes=[8, 64], epochs=7, patience=0, image_size=96, val_split=0.2,
        lr=0.0003, seed=5, augment=False, out="/srv/ckpt", precision="fp32", lr_scaling="sqrt",
        lr_reference_batch=64, warmup_epochs=1.5, budget="steps", budget_seconds=90.0, repeats=2,
        target_accuracy=0.8, noise_scale=True, name="night run", devices=["GPU:0", "GPU:1"], parallel=True,
        lr_grid=1, lr_grid_factor=2.5, lrs=[0.001, 1e-05], tune="halving", halving_eta=2, model="resnet50",
        weights="imagenet", freeze_backbone=True, fine_tune_from="conv5_block1_out").validate()


def parse(*argv: str) -> ExperimentConfig:
    return config_from_args(build_parser().parse_args(["run", *argv]))


def help_text(*argv: str, capsys, prog: str = "main.py") -> str:
    with pytest.raises(SystemExit):
        build_parser(prog=prog).parse_args([*argv, "--help"])
    return " ".join(capsys.readouterr().out.split())  # argparse wraps lines; compare words


def run_cli(*args: str, cwd: Path = ROOT, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "main.py"), *args], cwd=cwd, capture_output=True, text=True,
                          **kwargs)


# -- the definitions ------------------------------------------------------------------------------

def test_every_field_has_a_spec_a_flag_and_a_help_text():
    names = [f.name for f in dataclasses.fields(ExperimentConfig)]
    assert list(SETTINGS) == names
    flags = [SETTINGS[n].flag for n in names]
    assert len(set(flags)) == len(flags)
    for name in names:
        spec = SETTINGS[name]
        assert spec.flag and spec.label, name
        assert spec.help.endswith(".") and "\n" not in spec.help, name
        assert spec.kind in KINDS and spec.group in GROUPS, name
        if spec.kind == "list":
            assert spec.parse is not None and spec.example, name
    assert ExperimentConfig("d", [1]).problems() == []  # every default within its own limits
    assert set(README_FLAGS) <= set(flags)  # the documented flags are a contract
    assert REQUIRED == ("data_dir", "batch_sizes")
    assert all(DEFAULTS[name] is None for name in OPTIONAL)  # so a file that leaves them out means None


def test_problems_lists_every_problem_and_validate_raises_the_first():
    config = ExperimentConfig("d", [32, 0], epochs=0, val_split=1.5, tune="halving", budget="time")
    found = [str(p) for p in config.problems()]
    assert found == ["batch sizes: 0 is not a positive whole number; type e.g. 32 256 or 32,256",
                     "epochs: 0 must be a whole number between 1 and 100000",
                     "validation split: 1.5 must be between 0 and 1 (exclusive)",
                     "budget: 'time' needs a positive number of seconds per run (the time budget)",
                     "tuning: halving needs an epochs or steps budget",
                     "tuning: halving needs several learning rates: an lr grid above 1, or explicit lrs"]
    with pytest.raises(ConfigError) as caught:
        config.validate()
    assert str(caught.value) == found[0] and caught.value.problem.field == "batch_sizes"
    assert everything_set().problems() == []


def test_new_fields_have_their_rules():
    def problems(**values) -> list[str]:
        return [str(p) for p in ExperimentConfig("d", [32], **values).problems()]

    assert problems(lrs=[0.01, 0.1], lr_grid=3) == [
        "learning rates: give explicit learning rates or an lr grid above 1 (it is 3), not both"]
    assert problems(lrs=[0.0, 11.0]) == ["learning rates: 0.0 must be a number, positive and at most 10; type e.g. "
                                         "0.001 0.003"]
    assert problems(tune="halving", lr_grid=3, budget="time", budget_seconds=5.0) == [
        "tuning: halving needs an epochs or steps budget"]
    assert problems(model="mine.keras", weights="from-file", freeze_backbone=True, fine_tune_from="dense") == []
    assert problems(model="mine.h5") == ["model: 'mine.h5' is neither a built-in model (seed, seed-bn, "
                                         "mobilenetv3small, mobilenetv3large, efficientnetb0, resnet50) nor a .keras "
                                         "file"]
    assert problems(weights="from-file") == ["weights: 'from-file' means the weights inside a .keras model; pick "
                                             "one, or weights none or imagenet"]
    assert problems(model="seed-bn", freeze_backbone=True) == [
        "freeze the backbone: the seed-bn model has no backbone; pick a backbone or a .keras model"]
    assert problems(model="efficientnetb0", weights="imagenet", image_size=16) == [
        "image size: 16 px is below efficientnetb0's minimum of 32 px; use 224 (its native size) or at least 32"]
    assert problems(model="efficientnetb0", weights="/w/backbone.weights.h5") == []
    assert problems(image_size=None) == []  # auto


def test_old_records_load_with_defaults_for_new_settings():
    old = {"data_dir": "d", "batch_sizes": [32, 256], "image_size": 32, "epochs": 9, "retired_setting": 1}
    config = ExperimentConfig.from_dict(old)
    assert (config.image_size, config.epochs, config.lr_grid, config.model, config.lrs) == (32, 9, 1, "seed", None)
    assert config.validate() is config


@pytest.mark.parametrize("parser, text, expected", [
    (parse_batch_sizes, "32 256", [32, 256]), (parse_batch_sizes, "32,256", [32, 256]),
    (parse_batch_sizes, " 32, 256 ", [32, 256]), (parse_lrs, "1e-3, 0.003", [0.001, 0.003]), (parse_lrs, " ", None),
    (parse_devices, "0 gpu:1, cpu:0", ["GPU:0", "GPU:1", "CPU:0"]), (parse_devices, "", None),
])
def test_one_parser_per_list_field(parser, text, expected):
    assert parser(text) == expected


@pytest.mark.parametrize("parser, text, message", [
    (parse_batch_sizes, "32, abc", "batch sizes: 'abc' is not a positive whole number; type e.g. 32 256 or 32,256"),
    (parse_batch_sizes, "32 32", "batch sizes: 32 given more than once"),
    (parse_batch_sizes, "", "batch sizes: give at least one, e.g. 32 256"),
    (parse_lrs, "0.1 fast", "learning rates: 'fast' must be a number, positive and at most 10; type e.g. 0.001 0.003"),
    (parse_devices, "gpu0", "devices: 'gpu0' is not a device name like GPU:0 or CPU:0; type e.g. GPU:0 GPU:1"),
])
def test_list_parsers_say_what_to_type_instead(parser, text, message):
    with pytest.raises(ConfigError) as caught:
        parser(text)
    assert str(caught.value) == message


# -- the command line -----------------------------------------------------------------------------

def test_run_help_shows_every_flag_with_its_default(capsys):
    text = help_text("run", capsys=capsys)
    assert text.startswith("usage: main.py run DATA --batch-sizes N [N ...] [options]")
    for name, spec in SETTINGS.items():
        shown = spec.metavar if spec.positional else spec.flag
        assert re.search(rf"(^| ){re.escape(shown)}[ ,]", text), name
        if name in REQUIRED:
            assert f"{spec.help} (required, unless --config gives it)" in text, name
        elif spec.kind == "bool" and DEFAULTS[name]:
            assert f"{spec.help} This flag turns it off (default: on)" in text, name
        else:
            assert f"{spec.help} (default: {default_text(name)})" in text, name
    assert "(default: 50)" in text and "(default: auto)" in text and "--config FILE.toml" in text


def test_other_commands_state_their_defaults(capsys):
    demo = help_text("demo-data", capsys=capsys)
    assert "TO/shapes" in demo and "data/shapes" in demo and "(default: data)" in demo
    probe = " ".join(help_text("probe", capsys=capsys).split())
    assert "(default: the --experiment's, else the data set's recommended size (the demo's is 32), else 150)" in probe
    assert "COMMAND --help" in help_text(capsys=capsys)


def test_flags_parse_into_the_config_and_lists_take_commas():
    assert parse("d", "--batch-sizes", "32,256").batch_sizes == [32, 256]
    assert parse("d", "--batch-sizes", "32,", "256").batch_sizes == [32, 256]
    config = parse("d", "--batch-sizes", "8", "--image-size", "auto", "--lrs", "0.001,0.01", "--devices", "0",
                   "--no-augment", "--tune", "halving", "--model", "mobilenetv3small", "--weights", "imagenet")
    assert (config.image_size, config.lrs, config.devices, config.augment) == (None, [0.001, 0.01], ["GPU:0"], False)
    assert (config.tune, config.model, config.weights) == ("halving", "mobilenetv3small", "imagenet")
    assert parse("d", "--batch-sizes", "8") == ExperimentConfig("d", [8])


def test_a_bad_value_is_one_line_that_names_the_flag(tmp_path):
    done = run_cli("run", str(tmp_path), "--batch-sizes", "8", "--epochs", "x")
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == "error: argument --epochs: 'x' is not a whole number (see: main.py run --help)\n"
    done = run_cli("run", str(tmp_path), "--batch-sizes", "8", "--lr-grid", "3", "--lrs", "0.01", "0.1")
    assert done.returncode == 2
    assert done.stderr == ("error: --lrs: give explicit learning rates or an lr grid above 1 (it is 3), not both\n")


def test_worker_arguments_come_from_the_same_flags():
    """Every setting survives config -> command line -> parser, for run and for a cluster worker."""
    from engine.scale.cluster import worker_arguments

    config = everything_set()
    assert parse(*command_line(config)) == config
    worker = build_parser().parse_args(worker_arguments(config, ["a:1", "b:1"], 0))
    assert config_from_args(worker) == config
    assert command_line(ExperimentConfig("d", [32])) == ["d", "--batch-sizes", "32"]


def test_config_file_gives_every_setting_and_flags_override_it(tmp_path):
    path = tmp_path / "exp.toml"
    config = everything_set()
    write_config(config, path)
    assert parse("--config", str(path)) == config
    changed = parse("--config", str(path), "elsewhere", "--epochs", "3", "--image-size", "auto", "--batch-sizes", "4")
    assert changed == dataclasses.replace(config, data_dir="elsewhere", epochs=3, image_size=None, batch_sizes=[4])
    path.write_text('data_dir = "d"\nbatch_sizes = [8]\nbudget = "time"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(path))}: budget: 'time' needs a positive number"):
        parse("--config", str(path))
    assert parse("--config", str(path), "--budget-seconds", "30").budget_seconds == 30.0
    with pytest.raises(ConfigError, match="^data: give the data folder"):
        parse("--batch-sizes", "8")


def test_toml_round_trip_keeps_lists_and_leaves_out_none(tmp_path):
    path = tmp_path / "settings.toml"
    for config in (everything_set(), ExperimentConfig("d", [32, 256]), ExperimentConfig("ü x", [1], name="a\x7fb")):
        write_config(config, path)
        assert read_config(path) == config
    text = path.read_text(encoding="utf-8")
    assert "batch_sizes = [1]" in text and 'data_dir = "ü x"' in text
    for name in OPTIONAL - {"name"}:
        assert not re.search(rf"^{name} =", text, re.MULTILINE), name  # None is left out, not written
    assert not list(tmp_path.glob("*.tmp*"))  # written atomically, nothing left beside it


def test_hand_written_files_are_read_leniently_where_it_is_safe(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text('data_dir = "d"\nbatch_sizes = "32, 256"\nwarmup_epochs = 1\nimage_size = "auto"\n'
                    'lrs = [1, 0.1]\n', encoding="utf-8")
    config = read_config(path)
    assert (config.batch_sizes, config.warmup_epochs, config.image_size, config.lrs) == ([32, 256], 1.0, None,
                                                                                         [1.0, 0.1])


@pytest.mark.parametrize("text, message", [
    ("epochs = [\n", "not valid TOML: "),
    ("epochs = 0\n", "epochs: 0 must be a whole number between 1 and 100000"),
    ("epochs = 5.0\n", "epochs: 5.0 must be a whole number"),
    ("batch_sizes = [32, 'x']\n", "batch_sizes: 'x' is not a positive whole number"),
    ("augment = 'no'\n", "augment: 'no' must be true or false"),
    ("batch-sizes = [32]\n", "unknown setting 'batch-sizes' (known: data_dir, batch_sizes, epochs, "),
])
def test_a_bad_file_is_named_with_the_key(tmp_path, text, message):
    path = tmp_path / "bad settings.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        read_config(path)
    assert str(caught.value).startswith(f"{path}: {message}")


def test_a_bad_file_on_the_command_line_is_one_line(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("colour = 'blue'\n", encoding="utf-8")
    done = run_cli("run", "--config", str(path))
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert done.stderr.startswith(f"error: {path}: unknown setting 'colour' (known: data_dir, batch_sizes")


def test_printed_commands_follow_how_batchlab_was_started(capsys):
    assert program_name("main.py") == "main.py" and program_name("../lab/main.py") == "../lab/main.py"
    assert program_name("/home/u/.venv/bin/batchlab") == "batchlab"
    assert program_name("/x/engine/cli/__main__.py") == "python -m engine.cli"
    assert program_name("/venv/lib/pytest/__main__.py") == "main.py"  # someone else's launcher: the checkout's
    assert command("main.py", "run", "--resume", "/tmp/ü out/x") == "python main.py run --resume '/tmp/ü out/x'"
    assert command("../my lab/main.py", "run") == "python '../my lab/main.py' run"
    assert command("batchlab", "run", "--resume", "a b") == "batchlab run --resume 'a b'"
    assert shlex.split(command("main.py", "run", "--resume", "it's ü"))[-1] == "it's ü"
    assert help_text("run", capsys=capsys, prog="batchlab").startswith("usage: batchlab run DATA")


# -- image size auto --------------------------------------------------------------------------------

def test_auto_image_size_is_the_demo_recommendation_and_150_elsewhere(tmp_path):
    demo = generate_demo_data(tmp_path / "data", per_class=2, image_size=32)
    other = write_image_folder(tmp_path / "other", classes=2, per_class=2)
    assert recommended_image_size(demo) == 32 and recommended_image_size(other) is None
    assert resolve_image_size(ExperimentConfig(str(demo), [8])) == 32
    assert resolve_image_size(ExperimentConfig(str(other), [8])) == FALLBACK_IMAGE_SIZE == 150
    assert resolve_image_size(ExperimentConfig(str(demo), [8], image_size=64)) == 64  # an explicit size wins
    told: list[LogMessage] = []
    resolved = with_image_size(ExperimentConfig(str(demo), [8]), told.append)
    assert resolved.image_size == 32 and told == [
        LogMessage("info", f"image size: 32 px (auto: recommended by {demo / MANIFEST_NAME})")]

    manifest = json.loads((demo / MANIFEST_NAME).read_text(encoding="utf-8"))
    assert manifest["recommended"] == {"image_size": 32}
    del manifest["recommended"]  # a demo set drawn by an earlier version
    (demo / MANIFEST_NAME).write_text(json.dumps(manifest), encoding="utf-8")
    assert recommended_image_size(demo) == 32
    assert generate_demo_data(tmp_path / "data", per_class=2, image_size=32) == demo  # still reused as complete
    renamed = demo.rename(tmp_path / "data" / "my-shapes")
    assert recommended_image_size(renamed) is None  # without the entry, only the demo's own name says so


@pytest.mark.slow
def test_the_demo_trains_at_its_size_by_default_and_a_stopped_run_prints_its_resume_command(tmp_path):
    """``run data/shapes --batch-sizes ...`` with no size: the record holds 32; Ctrl+C prints how to resume."""
    demo = generate_demo_data(tmp_path / "data", per_class=6)
    out = tmp_path / "ü out"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen([sys.executable, "main.py", "run", str(demo), "--batch-sizes", "2",
                                "--epochs", "40", "--patience", "0", "--precision", "fp32", "--out", str(out)],
                               cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    lines = []
    for line in process.stdout:
        lines.append(line)
        if "epoch   1/" in line:
            process.send_signal(signal.SIGINT)
            break
    rest, errors = process.communicate(timeout=300)
    output = "".join(lines) + rest
    assert process.returncode == 130, output + errors
    assert f"info: image size: 32 px (auto: recommended by {demo / MANIFEST_NAME})" in output
    (experiment,) = [p for p in out.iterdir() if not p.name.startswith(".")]
    record = json.loads((experiment / "experiment.json").read_text(encoding="utf-8"))
    assert record["config"]["image_size"] == 32  # the size trained at, never "auto"
    resume = next(line for line in output.splitlines() if line.startswith("stopped; to finish it: "))
    assert resume.removeprefix("stopped; to finish it: ") == f"python main.py run --resume '{experiment}'"
    assert shlex.split(resume.split(": ", 1)[1])[-1] == str(experiment)
    tensorboard = next(line for line in output.splitlines() if line.startswith("TensorBoard: "))
    assert shlex.split(tensorboard.removeprefix("TensorBoard: ")) == ["tensorboard", "--logdir", str(experiment)]

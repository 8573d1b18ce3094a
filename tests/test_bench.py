"""The bench: every contract key is written by a real (tiny) run, and its arithmetic is right."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from batchlab.launcher import main
from batchlab.window_bench import stall_figures
from engine.measure.bench import REPORT_KEYS, TARGETS, table, verdict
from engine.train.models.flops import forward_flops

CONTRACT_KEYS = ("matmul_gflops_fp32", "matmul_gflops_mixed", "bare_images_per_s", "engine_images_per_s",
                 "engine_vs_bare_fp32", "pipeline_vs_engine", "mixed_vs_fp32", "gui_vs_headless",
                 "gui_stall_p99_ms", "gui_stall_max_ms", "train_flops_vs_peak", "mixed_val_acc_gap_points")


def test_tiny_quick_bench_writes_every_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "bench.json"
    code = main(["bench", "--quick", "--image-size", "32", "--batch-sizes", "8", "--demo-per-class", "6",
                 "--matmul-n", "64", "--accuracy-epochs", "1", "--rounds", "2", "--json", str(out)])
    assert code == 0
    result = json.loads(out.read_text())
    for key in CONTRACT_KEYS:
        assert result[key] is not None, key
    for key in ("bare_images_per_s", "engine_images_per_s", "engine_vs_bare_fp32", "pipeline_vs_engine",
                "mixed_vs_fp32"):
        assert set(result[key]) == {"8"} and result[key]["8"] > 0, key
    samples = result["samples_images_per_s"]  # two interleaved rounds; the figures are their medians
    assert [len(samples[name]["8"]) for name in ("bare", "bare_mixed", "engine", "pipeline")] == [2, 2, 2, 2]
    assert result["engine_images_per_s"]["8"] == pytest.approx(sum(samples["engine"]["8"]) / 2)
    assert result["matmul_gflops_fp32"] > 0 and result["gui_stall_max_ms"] >= result["gui_stall_p99_ms"] >= 0
    assert set(result["train_flops_vs_peak"]) == {"fp32", "mixed"}
    assert 0 <= result["mixed_val_acc_gap_points"] <= 100
    assert result["model"]["name"] == "seed" and result["forward_gflop_per_image"] * 1e9 == \
        result["model"]["flops_per_image"]
    printed = capsys.readouterr().out
    assert "engine_vs_bare_fp32" in printed and "target >= 0.95" in printed


def test_forward_flops_of_the_seed_model_at_150_px() -> None:
    from engine.train.models.seed import build_seed_cnn

    convs = 2 * 9 * (3 * 32 * 150 ** 2 + 32 * 32 * 148 ** 2 + 32 * 64 * 74 ** 2 + 64 * 64 * 72 ** 2)
    dense = 2 * (36 * 36 * 64 * 512 + 512 * 5)
    assert forward_flops(build_seed_cnn(150, 5)) == convs + dense
    assert 1.05e9 < convs + dense < 1.2e9  # the "~1.1 GFLOP per image"


def test_forward_flops_count_depthwise_separable_grouped_and_nested_layers() -> None:
    import keras

    pixels = keras.Input((8, 8, 3))
    x = keras.layers.DepthwiseConv2D(3, padding="same", depth_multiplier=2)(pixels)  # 8x8x6
    x = keras.layers.SeparableConv2D(4, 3)(x)  # 6x6x4
    x = keras.layers.Conv2D(4, 3, padding="same", groups=2)(x)  # 6x6x4, each output sees 2 channels
    inner = keras.Model(pixels, x, name="inner")
    outer_in = keras.Input((8, 8, 3))
    outputs = keras.layers.Dense(3)(keras.layers.GlobalAveragePooling2D()(inner(outer_in)))
    depthwise = 2 * 8 * 8 * 9 * 3 * 2
    separable = 2 * 6 * 6 * 9 * 6 + 2 * 6 * 6 * 6 * 4
    grouped = 2 * 6 * 6 * 9 * 2 * 4
    assert forward_flops(keras.Model(outer_in, outputs)) == depthwise + separable + grouped + 2 * 4 * 3


def test_the_bench_figures_follow_the_model() -> None:
    from engine.config import ExperimentConfig
    from engine.train.models.build import build_model

    seed = build_model(ExperimentConfig(data_dir="x", batch_sizes=[32], image_size=150), 5, seed=0).info
    mobilenet = build_model(ExperimentConfig(data_dir="x", batch_sizes=[32], image_size=150,
                                             model="mobilenetv3small"), 5, seed=0).info
    assert round(seed["flops_per_image"] / 1e9, 2) == 1.11  # the bench's seed figure is unchanged
    assert round(mobilenet["flops_per_image"] / 1e9, 3) == 0.055  # 27 M multiply-adds (56 M at 224 px)


def test_stalls_are_lateness_beyond_the_tick() -> None:
    ticks = [0.0, 0.010, 0.020, 0.130, 0.140]  # one tick 100 ms late
    p99, worst = stall_figures(ticks, interval_ms=10)
    assert worst == pytest.approx(100.0)
    assert 0 < p99 <= worst
    with pytest.raises(RuntimeError):
        stall_figures([1.0])


def test_verdicts_per_target_and_per_batch_size() -> None:
    assert verdict("engine_vs_bare_fp32", {"32": 0.97, "256": 0.99}).endswith("pass")
    assert verdict("engine_vs_bare_fp32", {"32": 0.97, "256": 0.90}).endswith("miss")
    assert verdict("gui_stall_max_ms", 250.0).endswith("miss")
    assert verdict("gui_stall_p99_ms", 12.0).endswith("pass")
    assert verdict("mixed_val_acc_gap_points", None) == ""
    assert verdict("matmul_gflops_fp32", 100.0) == ""
    assert set(TARGETS) <= set(REPORT_KEYS)


def test_table_shows_missing_figures_as_not_measured() -> None:
    result = {key: None for key in REPORT_KEYS}
    result.update(device="CPU: test", mixed_policy="mixed_bfloat16", auto_precision="fp32", train_images=10,
                  forward_gflop_per_image=0.04, settings={"image_size": 32, "batch_sizes": [8]},
                  engine_vs_bare_fp32={"8": 1.0})
    text = table(result)
    assert "not measured" in text and "engine_vs_bare_fp32" in text and "pass" in text

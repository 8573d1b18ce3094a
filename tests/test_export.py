"""Export every available format from a real tiny run, reload it, and compare predictions;
refuse corrupt, foreign or tampered inputs with one clear line."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from engine.artifacts.export import TOLERANCE, ExportError, export_run, float32_copy, format_availability
from engine.artifacts.predict import META_NAME, load_predictor, predict_files
from engine.artifacts.safe_load import ModelLoadError, load_keras_model
from engine.record.runs import NoRunError, choose_run
from engine.record.store import RecordError
from tests.helpers import write_image_folder

AVAILABLE = format_availability()


@pytest.fixture
def experiment(trained_experiment: Path) -> Path:
    return trained_experiment


@pytest.mark.parametrize("fmt", ["keras", "savedmodel", "onnx", "litert"])
def test_export_reloads_and_predicts_like_the_checkpoint(experiment: Path, tmp_path: Path, fmt: str) -> None:
    if AVAILABLE[fmt]:
        pytest.skip(f"{fmt} unavailable: {AVAILABLE[fmt]}")
    result = export_run(experiment, fmt, tmp_path / fmt)
    assert result.verification.matched and result.verification.source == "validation images"
    assert result.verification.images == 8  # VERIFY_IMAGES of the 9 validation images
    meta = json.loads((tmp_path / fmt / META_NAME).read_text())
    assert meta["classes"] == ["class_0", "class_1", "class_2"]
    assert meta["input"]["height"] == 32 and meta["input"]["range"] == [0, 255]
    assert "Rescaling(1/255)" in meta["preprocessing"]
    assert meta["source"]["batch_size"] == 4 and meta["verification"]["matched"] is True

    # Independently of the export's own check: the export and the checkpoint agree on real files.
    files = sorted((experiment.parent.parent / "data").rglob("*.png"))[::4]
    exported = predict_files(load_predictor(tmp_path / fmt), files)
    original = predict_files(load_predictor(experiment, batch_size=4), files)
    assert [p.class_name for p in exported] == [p.class_name for p in original]
    # A mixed-precision checkpoint (chosen by `auto` on CPUs with bf16) is exported in float32:
    # then only the export's promised tolerance holds; an fp32 run must agree almost exactly.
    mixed = json.loads((experiment / "experiment.json").read_text())["environment"]["precision"] != "fp32"
    atol = TOLERANCE if mixed else 1e-4
    assert np.allclose([p.confidence for p in exported], [p.confidence for p in original], atol=atol)


def test_export_replaces_an_earlier_export_but_never_a_foreign_folder(experiment: Path, tmp_path: Path) -> None:
    target = tmp_path / "export"
    export_run(experiment, "keras", target)
    export_run(experiment, "keras", target)  # an earlier export is replaced whole
    assert sorted(p.name for p in target.iterdir()) == [META_NAME, "model.keras"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left behind

    precious = tmp_path / "mine"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    with pytest.raises(ExportError, match="not empty and holds no earlier export"):
        export_run(experiment, "keras", precious)
    assert (precious / "notes.txt").read_text() == "keep me"
    with pytest.raises(ExportError, match="give a folder name"):
        export_run(experiment, "keras", tmp_path / "model.keras")


def test_unavailable_or_unknown_format_is_refused(experiment: Path, tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="not one of"):
        export_run(experiment, "pickle", tmp_path / "x")


def test_choose_run_picks_the_best_repeat_and_names_missing_sizes() -> None:
    record = {"id": "e", "runs": [
        {"batch_size": 8, "repeat": 0, "checkpoint": "bs8-r1/best.keras", "best": {"val_accuracy": 0.5}},
        {"batch_size": 8, "repeat": 1, "checkpoint": "bs8-r2/best.keras", "best": {"val_accuracy": 0.7}},
        {"batch_size": 32, "repeat": 0, "checkpoint": "bs32-r1/best.keras", "best": {"val_accuracy": 0.6}},
        {"batch_size": 64, "repeat": 0, "checkpoint": None, "best": None},
    ]}
    assert choose_run(record)["repeat"] == 1
    assert choose_run(record, 8, 0)["checkpoint"] == "bs8-r1/best.keras"
    assert choose_run(record, 32)["batch_size"] == 32
    with pytest.raises(NoRunError, match=r"no checkpoint for batch size 64 \(batch sizes with one: 8, 32\)"):
        choose_run(record, 64)


def test_tampered_record_pointing_outside_is_refused(experiment: Path, tmp_path: Path) -> None:
    tampered = tmp_path / "tampered"
    tampered.mkdir()
    record = json.loads((experiment / "experiment.json").read_text())
    record["runs"][0]["checkpoint"] = "../../elsewhere/evil.keras"
    (tampered / "experiment.json").write_text(json.dumps(record))
    with pytest.raises(RecordError, match="points outside the experiment folder; refused"):
        export_run(tampered, "keras", tmp_path / "out")
    with pytest.raises(RecordError, match="outside the experiment folder"):
        load_predictor(tampered)


def test_corrupt_and_foreign_keras_files_give_one_line(experiment: Path, tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.keras"
    corrupt.write_bytes((experiment / "bs4" / "best.keras").read_bytes()[:3000])
    foreign = tmp_path / "foreign.keras"
    foreign.write_text("this is not a model")
    for path, reason in ((corrupt, "not a zip archive"), (foreign, "not a zip archive")):
        with pytest.raises(ModelLoadError, match=reason) as info:
            load_keras_model(path)
        assert str(path) in str(info.value) and "\n" not in str(info.value)

    other_zip = tmp_path / "other.keras"
    with zipfile.ZipFile(other_zip, "w") as archive:
        archive.writestr("readme.txt", "hello")
    with pytest.raises(ModelLoadError, match="not a Keras 3 model file"):
        load_keras_model(other_zip)


def test_keras_file_with_lambda_or_outside_code_is_refused(tmp_path: Path) -> None:
    import keras

    inputs = keras.Input((4, 4, 3))
    model = keras.Model(inputs, keras.layers.Lambda(lambda x: x * 2)(inputs))
    lambda_file = tmp_path / "lambda.keras"
    model.save(lambda_file)
    with pytest.raises(ModelLoadError, match="Lambda layer"):
        load_keras_model(lambda_file)

    # Same archive, but its config names a class from another module: refused before Keras imports it.
    outside = tmp_path / "outside.keras"
    with zipfile.ZipFile(lambda_file) as src, zipfile.ZipFile(outside, "w") as dst:
        for name in src.namelist():
            data = src.read(name)
            if name == "config.json":
                data = data.replace(b'"Lambda"', b'"Evil"').replace(b'"keras.layers"', b'"os"')
            dst.writestr(name, data)
    with pytest.raises(ModelLoadError, match=r"code from outside Keras \(os\.Evil\)"):
        load_keras_model(outside)


def test_a_non_classifier_keras_model_is_refused(tmp_path: Path) -> None:
    import keras

    model = keras.Sequential([keras.Input((10,)), keras.layers.Dense(2)])
    path = tmp_path / "dense.keras"
    model.save(path)
    with pytest.raises(ModelLoadError, match="square RGB"):
        load_keras_model(path)


def test_float32_copy_of_a_mixed_precision_model_keeps_its_predictions() -> None:
    import keras

    from engine.train.models.seed import build_seed_cnn

    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        mixed = build_seed_cnn(32, 3)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    copy = float32_copy(mixed)
    assert {layer.dtype_policy.name for layer in copy.layers} == {"float32"}
    pixels = np.random.default_rng(1).uniform(0, 255, (2, 32, 32, 3)).astype(np.float32)
    assert np.allclose(copy.predict_on_batch(pixels), mixed.predict_on_batch(pixels), atol=2e-2)


def test_keras_file_with_a_layer_that_runs_another_graph_is_refused(tmp_path: Path) -> None:
    import keras

    plain = tmp_path / "plain.keras"
    keras.Sequential([keras.Input((4, 4, 3)), keras.layers.Flatten(), keras.layers.Dense(2)]).save(plain)
    tfsm = tmp_path / "tfsm.keras"
    with zipfile.ZipFile(plain) as src, zipfile.ZipFile(tfsm, "w") as dst:
        for name in src.namelist():
            data = src.read(name)
            dst.writestr(name, data.replace(b'"Dense"', b'"TFSMLayer"') if name == "config.json" else data)
    with pytest.raises(ModelLoadError, match=r"contains a TFSMLayer \(runs another SavedModel's graph\); refused"):
        load_keras_model(tfsm)


def test_float32_copy_of_a_nested_model_keeps_normalization_state() -> None:
    """A Normalization layer computes its constants from its weights when they are loaded; a copy
    made with set_weights alone would normalize with the defaults (mean 0, variance 1)."""
    import keras

    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        inner_in = keras.Input((8, 8, 3))
        norm = keras.layers.Normalization(axis=-1)
        inner = keras.Model(inner_in, keras.layers.Conv2D(4, 3)(norm(inner_in)), name="inner")
        outer_in = keras.Input((8, 8, 3))
        head = keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(inner(outer_in)))
        mixed = keras.Model(outer_in, keras.layers.Activation("softmax", dtype="float32")(head))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    norm.adapt(np.random.default_rng(0).uniform(100, 200, (16, 8, 8, 3)).astype(np.float32))
    copy = float32_copy(mixed)
    pixels = np.random.default_rng(1).uniform(100, 200, (4, 8, 8, 3)).astype(np.float32)
    assert np.allclose(copy.predict_on_batch(pixels), mixed.predict_on_batch(pixels), atol=2e-2)
    assert copy.get_layer("inner").layers[1].compute_dtype == "float32"


@pytest.fixture(scope="module")
def mobilenet_experiment(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real experiment folder whose best checkpoint is a MobileNetV3Small (weights none, 32 px)
    trained by the runner for an epoch, then once more here with its batch-norm statistics set from
    one batch (momentum 0): after a handful of steps the moving statistics are still near their
    defaults and every image gets nearly the same probabilities, which any export would "match"."""
    import keras

    from engine.config import ExperimentConfig
    from engine.record import store as rec
    from engine.study.launch import run_experiment
    from engine.train.models.build import build_model
    from engine.train.models.files import file_sha256, save_for_inference
    from engine.train.models.flops import leaf_layers
    from engine.train.prepare import prepare

    root = tmp_path_factory.mktemp("export_mobilenet")
    data = write_image_folder(root / "data", classes=3, per_class=6)
    config = ExperimentConfig(data_dir=str(data), batch_sizes=[4], epochs=1, image_size=32, augment=False,
                              out=str(root / "out"), name="exp", model="mobilenetv3small")
    experiment = run_experiment(config)
    prepared = prepare(config)
    images = prepared.data.images[prepared.train_idx].astype(np.float32)
    keras.mixed_precision.set_global_policy(prepared.precision.policy)
    try:
        built = build_model(config, 3, seed=0)
        model = built.model
        model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=keras.losses.SparseCategoricalCrossentropy(),
                      jit_compile=False)
        model.fit(images, np.asarray(prepared.data.labels)[prepared.train_idx], batch_size=4, epochs=1, verbose=0)
        for layer in leaf_layers(model):
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.momentum = 0.0
        model(images, training=True)
        record = rec.load(experiment)
        checkpoint = experiment / record["runs"][0]["checkpoint"]
        save_for_inference(model, checkpoint)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    record["runs"][0]["checkpoint_sha256"] = file_sha256(checkpoint)
    record["model"] = built.info
    rec.save(experiment, record)
    return experiment


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["keras", "savedmodel", "onnx", "litert"])
def test_a_mobilenet_run_exports_and_verifies_in_every_format(mobilenet_experiment: Path, tmp_path: Path,
                                                             fmt: str) -> None:
    if AVAILABLE[fmt]:
        pytest.skip(f"{fmt} unavailable: {AVAILABLE[fmt]}")
    original = load_predictor(mobilenet_experiment, batch_size=4)
    files = sorted((mobilenet_experiment.parent.parent / "data").rglob("*.png"))
    reference = np.array([[p.confidence] for p in predict_files(original, files)])
    assert np.ptp(reference) > 1e-3  # images get different probabilities: the comparison below can fail

    result = export_run(mobilenet_experiment, fmt, tmp_path / fmt)
    assert result.verification.matched and result.verification.source == "validation images"
    meta = json.loads((tmp_path / fmt / META_NAME).read_text())
    assert "MobileNetV3" in meta["preprocessing"] and meta["input"]["height"] == 32
    exported = predict_files(load_predictor(tmp_path / fmt), files)
    assert np.allclose([p.confidence for p in exported], reference[:, 0], atol=TOLERANCE)

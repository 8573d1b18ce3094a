"""The models a run trains: every built-in model on tiny real inputs, weights from a file and from a
local Keras cache, a user's own .keras model, frozen and fine-tuned backbones, and the settings checks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import keras
import numpy as np
import pytest

from engine.artifacts.safe_load import load_keras_model
from engine.config import MODEL_NAMES, ConfigError, ExperimentConfig
from engine.train.models.backbones import EFFICIENTNET_IMAGENET_STDDEV
from engine.train.models.build import build_model
from engine.train.models.files import file_sha256, save_for_inference, weights_sha256
from engine.train.models.flops import leaf_layers
from engine.train.models.settings import BACKBONES, check_model_settings

SIZE = 32
CLASSES = 3
BACKBONE_INDEX = {"mobilenetv3small": 1, "mobilenetv3large": 1, "efficientnetb0": 1, "resnet50": 3}
"""Where the Keras Applications backbone sits among the classifier's layers (ResNet50: after its preprocessing)."""


def config(**values: Any) -> ExperimentConfig:
    return ExperimentConfig(**{"data_dir": "unused", "batch_sizes": [2], "image_size": SIZE, **values})


def pixels(count: int = 6, size: int = SIZE, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 255, (count, size, size, 3)).astype(np.float32)


def labels(count: int = 6) -> np.ndarray:
    return np.arange(count) % CLASSES


@pytest.fixture
def mixed_precision() -> Iterator[None]:
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy("float32")
        keras.backend.clear_session()


def fit_one_epoch(model: keras.Model, count: int = 6) -> None:
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss=keras.losses.SparseCategoricalCrossentropy(),
                  jit_compile=False)
    model.fit(pixels(count), labels(count), batch_size=3, epochs=1, verbose=0, shuffle=False)


def snapshot(layers: Any) -> list[list[np.ndarray]]:
    return [[np.array(w) for w in layer.get_weights()] for layer in layers]


def changed(before: list[list[np.ndarray]], layers: Any) -> list[bool]:
    return [any(not np.array_equal(a, b) for a, b in zip(old, layer.get_weights())) for old, layer in
            zip(before, layers)]


# -- settings, without TensorFlow ------------------------------------------------------------------

def test_settings_are_checked_without_tensorflow(tmp_path: Path) -> None:
    code = ("import sys\n"
            "from engine.config import ExperimentConfig\n"
            "from engine.train.models.settings import check_model_settings\n"
            "check_model_settings(ExperimentConfig(data_dir='x', batch_sizes=[2], model='mobilenetv3small'))\n"
            "print('tensorflow' in sys.modules, 'keras' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parent.parent)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["False", "False"]


@pytest.mark.parametrize(("values", "message"), [
    ({"model": "vgg16"}, r"^model: 'vgg16' is not one of seed, seed-bn, .* nor a \.keras file$"),
    ({"model": "missing.keras"}, r"^model: missing\.keras: no such file$"),
    ({"weights": "imagenet"}, r"^weights: imagenet is for mobilenetv3small, .*; the seed CNN has no ImageNet"),
    ({"weights": "from-file"}, r"^weights: from-file takes the weights inside a --model \.keras file"),
    ({"weights": "nothere.weights.h5"}, r"^weights: nothere\.weights\.h5: no such file$"),
    ({"weights": "pretrained"}, r"^weights: 'pretrained' is not none, imagenet, from-file or a Keras weights file"),
    ({"freeze_backbone": True}, r"^freeze backbone: the seed CNN has no pretrained backbone"),
    ({"model": "resnet50", "freeze_backbone": True, "fine_tune_from": "conv5_block1_1_conv"},
     r"^fine tune from: give --freeze-backbone or --fine-tune-from LAYER, not both"),
    ({"model": "efficientnetb0", "image_size": 24},
     r"^image size: 24 px is below the minimum of efficientnetb0, 32 px; its native size is 224 px$"),
])
def test_bad_model_settings_are_one_line_naming_the_setting(values: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        check_model_settings(config(**values))
    assert "\n" not in str(info.value)


def test_good_model_settings_pass(tmp_path: Path) -> None:
    for name in MODEL_NAMES:
        check_model_settings(config(model=name, image_size=32))
    check_model_settings(config(model="mobilenetv3small", fine_tune_from="conv"))
    check_model_settings(config(model="seed", image_size=None))  # "auto", resolved later: no size check yet


def test_missing_imagenet_weights_name_the_file_and_the_command(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    expected = tmp_path / "keras" / "models" / "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
    with pytest.raises(ConfigError) as info:
        check_model_settings(config(model="resnet50", weights="imagenet"))
    text = str(info.value)
    assert "\n" not in text and text.startswith(f"weights: imagenet for resnet50 needs {expected}, which is missing")
    assert ("python -c \"import keras; keras.applications.ResNet50(include_top=False, weights='imagenet')\""
            in text)
    assert not expected.parent.exists()  # nothing was fetched or created


# -- every built-in model ---------------------------------------------------------------------------

def test_the_seed_cnn_and_its_initial_weights_are_unchanged() -> None:
    built = build_model(config(), CLASSES, seed=0)
    # The digests seed runs recorded before models became configurable (engine/train/model.py).
    assert weights_sha256(built.model) == "85602383913254e743177fa93e0e65d91e49248bf62a11971df7c7323bb5d1dc"
    assert weights_sha256(build_model(config(image_size=150), 5, seed=1).model) == \
        "823be3bbc3bf148a75dd4947074b32946b8aeeb445f175244de806a774054385"
    assert built.info == {
        "name": "seed", "source": "builtin", "weights": "none",
        "parameters": {"total": 1_247_267, "trainable": 1_247_267}, "flops_per_image": 41_475_072.0,
        "batch_norm_layers": 0, "head_replaced": False, "frozen_backbone": False, "fine_tune_from": None,
        "min_image_size": 16, "native_image_size": None}
    assert built.model.layers[-1].name == "probabilities" and built.warnings == ()


LARGE = ("mobilenetv3large", "efficientnetb0", "resnet50")
"""Over ~20 s to build, save and reload on two shared cores."""


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in LARGE else n for n in MODEL_NAMES])
def test_every_builtin_model_gives_float32_probabilities_and_reloads_safely(
        name: str, tmp_path: Path, mixed_precision: None) -> None:
    built = build_model(config(model=name), CLASSES, seed=0)
    model, info = built.model, built.info
    assert tuple(model.inputs[0].shape) == (None, SIZE, SIZE, 3)
    probabilities = model.predict_on_batch(pixels())
    assert model.outputs[0].dtype == "float32" and probabilities.dtype == np.float32
    assert probabilities.shape == (6, CLASSES) and np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert info["name"] == name and info["source"] == "builtin" and info["weights"] == "none"
    assert info["parameters"]["total"] == model.count_params() >= info["parameters"]["trainable"] > 0
    assert info["flops_per_image"] > 0 and info["head_replaced"] is False
    assert (info["batch_norm_layers"] > 0) == (name != "seed")
    assert info["min_image_size"] == (16 if name.startswith("seed") else 32)
    assert info["native_image_size"] == (None if name.startswith("seed") else 224)
    # Export, predict and evaluation load the checkpoint in Keras' safe mode with BatchLab's checks.
    checkpoint = tmp_path / "best.keras"
    save_for_inference(model, checkpoint)
    reloaded = load_keras_model(checkpoint)
    assert np.allclose(reloaded.predict_on_batch(pixels()), probabilities, atol=1e-6)


def test_resnet50_preprocessing_is_keras_caffe_mode() -> None:
    from keras.applications.resnet50 import preprocess_input

    model = build_model(config(model="resnet50"), CLASSES, seed=0).model
    preprocessing = keras.Model(model.inputs, model.get_layer("caffe_preprocessing").output)
    images = pixels(2)
    assert np.allclose(preprocessing.predict_on_batch(images), preprocess_input(images.copy()), atol=1e-4)


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in BACKBONES else n
                                  for n in MODEL_NAMES])
def test_one_epoch_of_training_under_mixed_precision(name: str, mixed_precision: None) -> None:
    model = build_model(config(model=name), CLASSES, seed=0).model
    before = weights_sha256(model)
    fit_one_epoch(model)
    probabilities = model.predict_on_batch(pixels())
    assert weights_sha256(model) != before
    assert probabilities.dtype == np.float32 and np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)


def test_same_seed_same_initial_weights_for_a_backbone() -> None:
    first = weights_sha256(build_model(config(model="mobilenetv3small"), CLASSES, seed=3).model)
    keras.backend.clear_session()
    assert weights_sha256(build_model(config(model="mobilenetv3small"), CLASSES, seed=3).model) == first
    assert weights_sha256(build_model(config(model="mobilenetv3small"), CLASSES, seed=4).model) != first


# -- weights: a file, and Keras' local ImageNet cache -----------------------------------------------

def test_weights_file_loads_into_the_backbone_or_the_whole_model(tmp_path: Path) -> None:
    donor = build_model(config(model="mobilenetv3small"), CLASSES, seed=1).model
    backbone_file, whole_file = tmp_path / "backbone.weights.h5", tmp_path / "whole.weights.h5"
    donor.layers[1].save_weights(backbone_file)
    donor.save_weights(whole_file)

    loaded = build_model(config(model="mobilenetv3small", weights=str(backbone_file)), CLASSES, seed=0).model
    assert weights_sha256(loaded.layers[1]) == weights_sha256(donor.layers[1])
    assert weights_sha256(loaded.get_layer("head")) != weights_sha256(donor.get_layer("head"))  # its own, seeded
    assert weights_sha256(build_model(config(model="mobilenetv3small", weights=str(whole_file)), CLASSES,
                                      seed=0).model) == weights_sha256(donor)

    seed_file = tmp_path / "seed.weights.h5"
    build_model(config(), CLASSES, seed=5).model.save_weights(seed_file)
    with pytest.raises(ConfigError, match=r"^weights: .*seed\.weights\.h5 does not fit \(the mobilenetv3small "
                                          r"backbone: .*; the whole mobilenetv3small classifier: "):
        build_model(config(model="mobilenetv3small", weights=str(seed_file)), CLASSES, seed=0)


@pytest.mark.parametrize("name", ["mobilenetv3small", "efficientnetb0"])
def test_imagenet_weights_come_from_the_local_keras_cache(name: str, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The test saves a freshly built backbone under the name Keras caches the ImageNet file as; the
    build must load exactly that file (its MD5 is not Keras' own: a warning, and still loaded)."""
    cache = tmp_path / "keras" / "models"
    cache.mkdir(parents=True)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    donor = build_model(config(model=name), CLASSES, seed=7).model.layers[1]
    donor.save(cache / BACKBONES[name].imagenet_file)  # legacy HDF5, as Keras' files are
    built = build_model(config(model=name, weights="imagenet"), CLASSES, seed=0)
    backbone = built.model.layers[1]
    assert built.info["weights"] == "imagenet"
    assert len(built.warnings) == 1 and "not the" in built.warnings[0] and "loaded anyway" in built.warnings[0]
    for mine, theirs in zip(leaf_layers(backbone), leaf_layers(donor)):
        if isinstance(mine, keras.layers.Normalization):
            # Keras' EfficientNet adds Rescaling(1/sqrt(stddev)) with ImageNet weights: folded into the variance.
            mean, variance, _ = theirs.get_weights()
            assert np.allclose(mine.get_weights()[0], mean)
            assert np.allclose(mine.get_weights()[1], variance * np.asarray(EFFICIENTNET_IMAGENET_STDDEV))
        else:
            assert all(np.array_equal(a, b) for a, b in zip(mine.get_weights(), theirs.get_weights())), mine.name
    assert any(isinstance(layer, keras.layers.Normalization) for layer in leaf_layers(backbone)) == (
        name == "efficientnetb0")


# -- a user's own .keras model ----------------------------------------------------------------------

def user_model(path: Path, width: int, *, size: Any = SIZE, activation: str = "softmax",
               channels: int = 3) -> Path:
    """A small image classifier with batch normalization, written as the user would write it."""
    inputs = keras.Input((size, size, channels), name="pixels")
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.Conv2D(8, 3, name="conv_a")(x)
    x = keras.layers.BatchNormalization(name="bn_a")(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.Conv2D(8, 3, name="conv_b")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(16, activation="relu", name="features")(x)
    outputs = keras.layers.Dense(width, activation=activation, name="scores")(x)
    keras.Model(inputs, outputs, name="mine").save(path)
    return path


def test_user_model_with_the_right_width_is_rebuilt_with_fresh_seeded_weights(tmp_path: Path,
                                                                               mixed_precision: None) -> None:
    path = user_model(tmp_path / "mine.keras", CLASSES)
    built = build_model(config(model=str(path)), CLASSES, seed=0)
    info, model = built.info, built.model
    assert info["source"] == "file" and info["name"] == str(path) and info["sha256"] == file_sha256(path)
    assert info["head_replaced"] is False and info["batch_norm_layers"] == 1
    assert info["min_image_size"] == info["native_image_size"] == SIZE
    assert [layer.name for layer in model.layers][-1] == "scores"
    assert model.outputs[0].dtype == "float32" and model.get_layer("conv_a").compute_dtype == "bfloat16"
    rescaling = next(layer for layer in model.layers if isinstance(layer, keras.layers.Rescaling))
    assert rescaling.compute_dtype == "float32"  # 0-255 pixels are not rounded to bfloat16
    original = load_keras_model(path)
    assert weights_sha256(model) != weights_sha256(original)  # fresh, not the file's
    keras.backend.clear_session()
    assert weights_sha256(build_model(config(model=str(path)), CLASSES, seed=0).model) == weights_sha256(model)
    from_file = build_model(config(model=str(path), weights="from-file"), CLASSES, seed=0).model
    assert weights_sha256(from_file) == weights_sha256(original)
    fit_one_epoch(model)
    assert np.allclose(model.predict_on_batch(pixels()).sum(axis=1), 1.0, atol=1e-5)


def test_user_model_with_another_width_gets_a_new_softmax_head(tmp_path: Path) -> None:
    path = user_model(tmp_path / "five.keras", 5, size=None)  # any size: the experiment's is used
    built = build_model(config(model=str(path), weights="from-file"), CLASSES, seed=0)
    model, original = built.model, keras.saving.load_model(path)
    assert built.info["head_replaced"] is True
    assert built.info["min_image_size"] is None and built.info["native_image_size"] is None
    assert [layer.name for layer in model.layers][-3:] == ["features", "head", "probabilities"]
    assert tuple(model.inputs[0].shape) == (None, SIZE, SIZE, 3) and tuple(model.outputs[0].shape) == (None, 3)
    assert np.array_equal(model.get_layer("conv_b").get_weights()[0], original.get_layer("conv_b").get_weights()[0])
    assert np.allclose(model.predict_on_batch(pixels()).sum(axis=1), 1.0, atol=1e-5)
    assert build_model(config(model=str(path)), 5, seed=0).info["head_replaced"] is False


def test_user_models_that_cannot_be_trained_are_one_line(tmp_path: Path) -> None:
    fixed = user_model(tmp_path / "big.keras", CLASSES, size=64)
    with pytest.raises(ConfigError, match=r"^image size: 32 px, but .*big\.keras takes 64x64 images \(set the image "
                                          r"size to 64\)$"):
        check_model_settings(config(model=str(fixed)))
    grey = user_model(tmp_path / "grey.keras", CLASSES, channels=1)
    with pytest.raises(ConfigError, match=r"grey\.keras does not take RGB images \(input shape \(None, 32, 32, 1\)"):
        check_model_settings(config(model=str(grey)))
    logits = user_model(tmp_path / "logits.keras", CLASSES, activation="linear")
    with pytest.raises(ConfigError, match=r"logits\.keras must end in a softmax \(its last layer, scores, gives "
                                          r"linear outputs\)"):
        build_model(config(model=str(logits)), CLASSES, seed=0)
    with pytest.raises(ConfigError, match=r"^weights: imagenet is for .*; .*logits\.keras has no ImageNet weights"):
        check_model_settings(config(model=str(logits), weights="imagenet"))
    damaged = tmp_path / "damaged.keras"
    damaged.write_bytes(b"not a zip")
    with pytest.raises(ConfigError, match=r"^model: .*damaged\.keras: not a \.keras model file"):
        check_model_settings(config(model=str(damaged)))


# -- what trains: frozen backbone, fine-tuning from a layer ----------------------------------------

def test_frozen_backbone_trains_only_the_head(tmp_path: Path) -> None:
    path = user_model(tmp_path / "mine.keras", 5)
    model = build_model(config(model=str(path), freeze_backbone=True, weights="from-file"), CLASSES, seed=0).model
    before = snapshot(model.layers)
    fit_one_epoch(model)
    moved = {layer.name for layer, change in zip(model.layers, changed(before, model.layers)) if change}
    assert moved == {"head"}  # the batch-norm statistics too stay as they were (inference mode)


def test_fine_tuning_from_a_layer_keeps_the_layers_before_it_frozen(tmp_path: Path) -> None:
    path = user_model(tmp_path / "mine.keras", CLASSES)
    model = build_model(config(model=str(path), fine_tune_from="conv_b"), CLASSES, seed=0).model
    before = snapshot(model.layers)
    fit_one_epoch(model)
    moved = {layer.name for layer, change in zip(model.layers, changed(before, model.layers)) if change}
    assert moved == {"conv_b", "features", "scores"}
    with pytest.raises(ConfigError, match=r"^fine tune from: no layer named 'conv_c' in mine\.keras \(before its "
                                          r"head\) \(did you mean conv_b, conv_a\?\)$"):
        build_model(config(model=str(path), fine_tune_from="conv_c"), CLASSES, seed=0)


def test_backbone_freezing_and_fine_tuning_choose_the_trainable_weights() -> None:
    frozen = build_model(config(model="mobilenetv3small", freeze_backbone=True), CLASSES, seed=0)
    head = frozen.model.get_layer("head")
    assert [w.path for w in frozen.model.trainable_weights] == [w.path for w in head.weights]
    assert frozen.info["frozen_backbone"] is True
    assert frozen.info["parameters"]["trainable"] == head.count_params()

    tuned = build_model(config(model="mobilenetv3small", fine_tune_from="expanded_conv_10_expand"), CLASSES,
                        seed=0)
    leaves = [layer for layer in leaf_layers(tuned.model.layers[1]) if not isinstance(layer, keras.layers.InputLayer)]
    start = [layer.name for layer in leaves].index("expanded_conv_10_expand")
    assert not any(layer.trainable for layer in leaves[:start]) and all(layer.trainable for layer in leaves[start:])
    assert tuned.info["fine_tune_from"] == "expanded_conv_10_expand"
    assert 0 < tuned.info["parameters"]["trainable"] < tuned.info["parameters"]["total"]
    with pytest.raises(ConfigError, match=r"^fine tune from: no layer named 'expanded_conv_10_expnd' in the "
                                          r"mobilenetv3small backbone \(did you mean expanded_conv_10_expand"):
        build_model(config(model="mobilenetv3small", fine_tune_from="expanded_conv_10_expnd"), CLASSES, seed=0)


def test_frozen_backbone_keeps_its_weights_and_statistics_through_training(mixed_precision: None) -> None:
    model = build_model(config(model="mobilenetv3small", freeze_backbone=True), CLASSES, seed=0).model
    before = snapshot(model.layers)
    fit_one_epoch(model)
    moved = {layer.name for layer, change in zip(model.layers, changed(before, model.layers)) if change}
    assert moved == {"head"}



def test_a_runs_own_initial_weights_reload_quietly_and_exactly(tmp_path: Path) -> None:
    import warnings

    from engine.train.models.files import load_own_weights

    saved = build_model(config(model="mobilenetv3small"), CLASSES, seed=1).model
    saved.save_weights(tmp_path / "seed1.weights.h5")
    model = build_model(config(model="mobilenetv3small"), CLASSES, seed=2).model
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        load_own_weights(model, tmp_path / "seed1.weights.h5")
    assert weights_sha256(model) == weights_sha256(saved)
    assert not [w for w in caught if "container" in str(w.message)]


def test_batch_normalization_batches_are_recorded_and_small_ones_warned(tmp_path: Path) -> None:
    """A real seed-bn experiment at batch sizes 4 and 16: the record says what each BN layer averages over,
    and the advice warns about 4 (below 16 per replica) and not about 16."""
    from engine.analysis.summary import summarize
    from engine.record.store import load as load_record
    from engine.study.launch import run_experiment
    from tests.helpers import write_image_folder

    data = write_image_folder(tmp_path / "data", classes=2, per_class=16)
    folder = run_experiment(ExperimentConfig(str(data), [4, 16], epochs=1, image_size=32, model="seed-bn",
                                             out=str(tmp_path / "out"), precision="fp32", augment=False))
    record = load_record(folder)
    assert [r["bn_per_replica_batch"] for r in record["runs"]] == [4, 16]
    layers = record["model"]["batch_norm_layers"]
    assert layers > 0 and all(r["bn_calibration"] == {"samples": 256, "layers": layers,
                                                      "images": "training, not augmented"} for r in record["runs"])
    advice = summarize(record).advice
    assert "Batch normalization sees fewer than 16 samples per replica (4 at batch size 4)" in advice
    assert "at batch size 16" not in advice

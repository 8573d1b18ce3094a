"""Keras Applications backbones with a new classifier head, and their ImageNet weights from Keras' cache.

Every classifier takes raw 0-255 RGB pixels: MobileNetV3 and EfficientNet carry their
preprocessing layers inside the backbone; ResNet50's "caffe" preprocessing (RGB to BGR,
minus the ImageNet mean) is built here from a Keras operation and a Rescaling layer,
whose constants live in the model's description, so a rebuild from that description
(a user giving a BatchLab checkpoint as ``--model``) keeps it exact. Nothing is a
Lambda or a custom class: Keras' safe mode and every export format load it.

ImageNet weights are never downloaded: the file Keras would have cached is loaded into
a backbone built with ``weights=None`` (Keras' own loader re-downloads a file whose hash
differs; here a differing hash is a warning).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Optional

import keras
import numpy as np
from keras import layers

from engine.train.models import training
from engine.train.models.flops import leaf_layers
from engine.train.models.settings import BACKBONES, imagenet_path

HEAD_DROPOUT = 0.2  # the rate Keras' own MobileNetV3 and EfficientNetB0 tops use
FROM_SCRATCH_BN_MOMENTUM = 0.99  # Keras' default
CAFFE_BGR_MEAN = (103.939, 116.779, 123.68)  # keras.applications.imagenet_utils, mode "caffe"
EFFICIENTNET_IMAGENET_STDDEV = (0.229, 0.224, 0.225)  # keras.applications.efficientnet.IMAGENET_STDDEV_RGB


def softmax_head(features: Any, num_classes: int, seed: int, dense_name: str = "head",
                 output_name: str = "probabilities") -> Any:
    """Dense(classes) then a float32 softmax: stable probabilities and losses under mixed precision."""
    logits = layers.Dense(num_classes, kernel_initializer=keras.initializers.GlorotUniform(seed), name=dense_name)(
        features)
    return layers.Activation("softmax", dtype="float32", name=output_name)(logits)


def caffe_preprocessing(pixels: Any) -> Any:
    """RGB to BGR, minus the ImageNet mean, in float32 (bfloat16 would round 0-255 values by up to 0.5)."""
    bgr = keras.ops.flip(pixels, axis=-1)
    offset = [-value for value in CAFFE_BGR_MEAN]
    return layers.Rescaling(1.0, offset=offset, dtype="float32", name="caffe_preprocessing")(bgr)


def build_backbone(name: str, image_size: int) -> keras.Model:
    """The Keras Applications network without its top, randomly initialized."""
    options = {"include_preprocessing": True} if name.startswith("mobilenetv3") else {}
    constructor = getattr(keras.applications, BACKBONES[name].application)
    return constructor(input_shape=(image_size, image_size, 3), include_top=False, weights=None, **options)


def build_classifier(name: str, image_size: int, num_classes: int, seed: int, weights: str, freeze: bool,
                     fine_tune_from: Optional[str]) -> tuple[keras.Model, list[str]]:
    """Backbone, global average pooling, dropout, Dense(classes), float32 softmax; and any warnings.

    A frozen backbone is called in inference mode: its BatchNormalization statistics and
    its own dropout stay as they are while the head trains.
    """
    backbone = build_backbone(name, image_size)
    inputs = keras.Input((image_size, image_size, 3), name="image")
    pixels = caffe_preprocessing(inputs) if name == "resnet50" else inputs
    features = backbone(pixels, training=False) if freeze else backbone(pixels)
    features = layers.GlobalAveragePooling2D(name="pool")(features)
    features = layers.Dropout(HEAD_DROPOUT, seed=seed, name="head_dropout")(features)
    model = keras.Model(inputs, softmax_head(features, num_classes, seed), name=f"{name}_classifier")
    notes: list[str] = []
    if weights == "none":
        warm_up_batch_norm(backbone)
    if weights == "imagenet":
        notes += load_imagenet(name, backbone)
    elif weights != "none":
        training.load_weights_file(Path(weights), [(f"the {name} backbone", backbone),
                                                   (f"the whole {name} classifier", model)])
    if freeze:
        backbone.trainable = False
    elif fine_tune_from is not None:
        training.fine_tune_from(training.trainable_leaves(backbone.layers), fine_tune_from, f"the {name} backbone")
    return model, notes


def warm_up_batch_norm(backbone: keras.Model) -> None:
    """From scratch, use Keras' default batch-norm momentum (0.99) instead of the ImageNet recipe's
    0.999 (MobileNetV3): at 0.999 the moving statistics need thousands of steps to leave their
    initial values, so a run of a few hundred steps validates every image alike, near chance,
    whatever its batch size. Pretrained backbones keep their own momentum."""
    for layer in leaf_layers(backbone):
        if isinstance(layer, layers.BatchNormalization):
            layer.momentum = FROM_SCRATCH_BN_MOMENTUM


def load_imagenet(name: str, backbone: keras.Model) -> list[str]:
    """Load Keras' cached ImageNet file (never fetch it); a hash other than Keras' is a warning."""
    path = imagenet_path(name)  # present: build_model checked the settings
    notes = []
    with open(path, "rb") as handle:  # Keras publishes MD5s for these files
        digest = hashlib.file_digest(handle, lambda: hashlib.md5(usedforsecurity=False)).hexdigest()
    if digest != BACKBONES[name].imagenet_md5:
        notes.append(f"weights: {path} has MD5 {digest}, not the {BACKBONES[name].imagenet_md5} Keras publishes "
                     "for it; loaded anyway")
    training.load_weights_file(path, [(f"the {name} backbone", backbone)])
    if name == "efficientnetb0":
        fold_imagenet_scale(backbone)
    return notes


def fold_imagenet_scale(backbone: keras.Model) -> None:
    """Keras' EfficientNet adds Rescaling(1/sqrt(stddev)) after its Normalization layer, but only
    when Keras loads the ImageNet weights itself. The same scale is folded into that layer's
    variance here, so the network with ImageNet weights is the one Keras would build."""
    norm = next(layer for layer in backbone.layers if isinstance(layer, layers.Normalization))
    variance = keras.ops.convert_to_numpy(norm.adapt_variance)
    norm.adapt_variance.assign(variance * np.asarray(EFFICIENTNET_IMAGENET_STDDEV, dtype=variance.dtype))
    norm.finalize_state()


"""The settings of one experiment, validated with messages that name the setting at fault."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, fields
from typing import Any, Optional

LR_SCALINGS = ("none", "linear", "sqrt")
BUDGETS = ("epochs", "steps", "time")
PRECISIONS = ("auto", "fp32", "mixed")
MODEL_NAMES = ("seed", "seed-bn", "mobilenetv3small", "mobilenetv3large", "efficientnetb0", "resnet50")
"""Built-in models; ``model`` may also be the path of a ``.keras`` file."""
WEIGHTS_CHOICES = ("none", "imagenet", "from-file")
"""Initial weights; ``weights`` may also be the path of a weights file."""
MODEL_MIN_IMAGE_SIZE = {"seed": 16, "seed-bn": 16, "mobilenetv3small": 32, "mobilenetv3large": 32,
                        "efficientnetb0": 32, "resnet50": 32}
MODEL_NATIVE_IMAGE_SIZE = {"seed": None, "seed-bn": None, "mobilenetv3small": 224, "mobilenetv3large": 224,
                           "efficientnetb0": 224, "resnet50": 224}
"""The size the ImageNet weights were trained at (None: no pretrained weights)."""


class ConfigError(ValueError):
    """A setting is out of range; the message names it."""


@dataclass
class ExperimentConfig:
    """Everything that defines an experiment; recorded verbatim as ``config`` in experiment.json."""

    data_dir: str
    batch_sizes: list[int]
    epochs: int = 50
    patience: int = 5
    image_size: int = 150
    val_split: float = 0.25
    lr: float = 0.001
    seed: int = 0
    augment: bool = True
    out: str = "checkpoints"
    precision: str = "auto"
    lr_scaling: str = "none"
    lr_reference_batch: Optional[int] = None  # None: the smallest batch size of the experiment
    warmup_epochs: float = 0.0
    budget: str = "epochs"
    budget_seconds: Optional[float] = None  # for budget == "time"
    repeats: int = 1
    target_accuracy: Optional[float] = None  # None: 95% of the best val accuracy any run reached
    noise_scale: bool = False
    name: Optional[str] = None
    devices: Optional[list[str]] = None  # None: every visible GPU (several: MirroredStrategy)
    parallel: bool = False  # train the batch sizes at once, one process per device
    model: str = "seed"  # a name in MODEL_NAMES or the path of a .keras file
    weights: str = "none"  # none | imagenet | from-file | the path of a weights file
    freeze_backbone: bool = False  # train the new head only
    fine_tune_from: Optional[str] = None  # unfreeze the backbone from this layer on

    def validate(self) -> "ExperimentConfig":
        """Raise ConfigError for the first bad setting; return self to allow chaining."""
        sizes = self.batch_sizes
        if not sizes:
            raise ConfigError("batch sizes: give at least one")
        for size in sizes:
            if isinstance(size, bool) or not isinstance(size, int) or size < 1:
                raise ConfigError(f"batch sizes: {size!r} is not a positive whole number")
        if len(set(sizes)) != len(sizes):
            dupes = sorted({s for s in sizes if sizes.count(s) > 1})
            raise ConfigError(f"batch sizes: {', '.join(map(str, dupes))} given more than once")
        _check_int("epochs", self.epochs, 1)
        _check_int("patience", self.patience, 0)
        _check_int("image size", self.image_size, 16, 1024)
        _check_int("repeats", self.repeats, 1, 100)
        _check_int("seed", self.seed, 0)
        if not 0.0 < self.val_split < 1.0:
            raise ConfigError(f"validation split: {self.val_split} must be between 0 and 1 (exclusive)")
        if not self.lr > 0 or self.lr > 10:
            raise ConfigError(f"learning rate: {self.lr} must be positive and at most 10")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision: {self.precision!r} is not one of {', '.join(PRECISIONS)}")
        if self.lr_scaling not in LR_SCALINGS:
            raise ConfigError(f"lr scaling: {self.lr_scaling!r} is not one of {', '.join(LR_SCALINGS)}")
        if self.lr_reference_batch is not None:
            _check_int("lr reference batch", self.lr_reference_batch, 1)
        if self.warmup_epochs < 0:
            raise ConfigError(f"warm-up epochs: {self.warmup_epochs} must not be negative")
        if self.budget not in BUDGETS:
            raise ConfigError(f"budget: {self.budget!r} is not one of {', '.join(BUDGETS)}")
        if self.budget == "time" and not (self.budget_seconds and self.budget_seconds > 0):
            raise ConfigError("budget: 'time' needs a positive number of seconds per run")
        if self.target_accuracy is not None and not 0.0 < self.target_accuracy <= 1.0:
            raise ConfigError(f"target accuracy: {self.target_accuracy} must be in (0, 1]")
        if self.devices is not None:
            if not self.devices:
                raise ConfigError("devices: give at least one, e.g. GPU:0, or leave unset for every GPU")
            for device in self.devices:
                if not isinstance(device, str) or not re.fullmatch(r"(GPU|CPU):\d+", device):
                    raise ConfigError(f"devices: {device!r} is not a device name like GPU:0 or CPU:0")
            if len(set(self.devices)) != len(self.devices):
                raise ConfigError("devices: a device is given more than once")
        return self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ExperimentConfig":
        """Build from a record's ``config``, ignoring keys this version does not know."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["batch_sizes"] = list(values.get("batch_sizes", []))
        return cls(**values)


def _check_int(label: str, value: Any, low: int, high: Optional[int] = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise ConfigError(f"{label}: {value!r} must be a whole number {bound}")

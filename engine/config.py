"""The settings of one experiment, each defined once: label, help, flag, limits and checks.

Every ``ExperimentConfig`` field carries a ``Setting`` in its metadata. The command line
(engine.cli.run), the settings file (engine.config_file), the window's settings panel and
the cluster's worker command are all generated from these definitions, so a default, a limit
or a help text is written here and nowhere else. Errors name the setting in one line.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import asdict, dataclass, fields
from typing import Any, Callable, NamedTuple, Optional

LR_SCALINGS = ("none", "linear", "sqrt")
BUDGETS = ("epochs", "steps", "time")
PRECISIONS = ("auto", "fp32", "mixed")
TUNE_METHODS = ("grid", "halving")
WEIGHT_CHOICES = ("none", "imagenet", "from-file")  # or the path of a weights file
GROUPS = ("data", "training", "study", "model", "advanced", "scale")
KINDS = ("int", "float", "bool", "text", "list")

SEED_MODELS = ("seed", "seed-bn")
MODEL_NAMES = (*SEED_MODELS, "mobilenetv3small", "mobilenetv3large", "efficientnetb0", "resnet50")
MODEL_FILE_SUFFIX = ".keras"


class ImageSizes(NamedTuple):
    """A backbone's smallest workable input and the size its pretrained weights were made at."""

    minimum: int
    native: int


BACKBONE_IMAGE_SIZES = {name: ImageSizes(minimum=32, native=224) for name in MODEL_NAMES if name not in SEED_MODELS}
SEED_MIN_IMAGE_SIZE = 16  # the seed CNNs take any size the image-size setting allows


def image_sizes(model: str) -> tuple[int, Optional[int]]:
    """(minimum, native) image size of a built-in model; the seed CNNs have no native size."""
    sizes = BACKBONE_IMAGE_SIZES.get(model)
    return (sizes.minimum, sizes.native) if sizes else (SEED_MIN_IMAGE_SIZE, None)
FALLBACK_IMAGE_SIZE = 150  # what ``image_size`` auto means for a data set that recommends none


class ConfigError(ValueError):
    """A setting is out of range; the message names it. ``problem`` says which field, when one is at fault."""

    def __init__(self, message: "str | Problem") -> None:
        super().__init__(str(message))
        self.problem = message if isinstance(message, Problem) else None


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one setting: ``text`` says what, and what to type instead."""

    field: str
    text: str

    def __str__(self) -> str:
        return f"{SETTINGS[self.field].label.lower()}: {self.text}"


@dataclass(frozen=True)
class Setting:
    """How one setting is named, explained, limited and entered, in the window and on the command line."""

    label: str  # the window's label; errors name the setting with it, in lower case
    help: str  # one sentence: --help and the window's tooltip
    flag: str  # command-line flag (``data`` for the positional data folder)
    kind: str  # one of KINDS; a list's items are ``item``
    group: str  # one of GROUPS: where the window shows it, how --help groups it
    low: Optional[float] = None
    high: Optional[float] = None
    low_open: bool = False  # ``low`` itself is refused
    high_open: bool = False
    choices: tuple[str, ...] = ()
    none_text: str = ""  # what None means, in help and as the window's special value
    none_word: str = ""  # typed on the command line for None, e.g. "auto"
    low_text: str = ""  # the window's text for the lowest value, e.g. "off"
    percent: bool = False  # a fraction the window shows as a percentage
    decimals: Optional[int] = None  # a float the window shows in a spin box; None: typed as text
    unit: str = ""  # the window's suffix, e.g. " px"
    metavar: str = ""
    item: str = ""  # a list's item kind: int, float or text
    example: str = ""  # what to type, for messages
    parse: Optional[Callable[[str], Any]] = None  # a list's one text parser (command line and window)
    check: Optional[Callable[[Any], Optional[str]]] = None  # a further check of a text value
    bare: str = ""  # the value of the flag given alone (``--ray``), e.g. "local"; the window offers it as a checkbox

    @property
    def positional(self) -> bool:
        return not self.flag.startswith("-")


def _setting(default: Any = dataclasses.MISSING, **spec: Any) -> Any:
    return dataclasses.field(default=default, metadata={"setting": Setting(**spec)})


# -- the one text parser per list field (the command line joins its words with spaces) ---------------

def _tokens(text: str) -> list[str]:
    return [t for t in re.split(r"[,;\s]+", text.strip()) if t]


def _parse_list(name: str, text: str, convert: Callable[[str], Any]) -> Optional[list[Any]]:
    """Split on commas, semicolons or spaces; each word converted and checked like the config checks it."""
    spec = SETTINGS[name]
    values = []
    for token in _tokens(text):
        try:
            value = convert(token)
        except ValueError:
            value = None
        if value is None or _bad_item(spec, value):
            raise ConfigError(Problem(name, f"'{token}' {_item_rule(spec)}; type e.g. {spec.example}"))
        values.append(value)
    if not values and name in OPTIONAL:
        return None
    problem = value_problem(name, values)
    if problem:
        raise ConfigError(Problem(name, problem))
    return values


def parse_batch_sizes(text: str) -> list[int]:
    """'32 256', '32,256' or '32, 256'."""
    return _parse_list("batch_sizes", text, _whole) or []


def parse_lrs(text: str) -> Optional[list[float]]:
    """'0.001 0.003' or '1e-3, 3e-3'; empty: None (the learning rate, or its grid)."""
    return _parse_list("lrs", text, float)


def parse_devices(text: str) -> Optional[list[str]]:
    """'GPU:0 gpu:1', or '0 1' for GPUs; empty: None (every visible GPU)."""
    return _parse_list("devices", text, _device_name)


def _whole(token: str) -> int:
    if not re.fullmatch(r"[+-]?\d+", token):
        raise ValueError(token)
    return int(token)


def _device_name(token: str) -> str:
    name = token.upper()
    return f"GPU:{name}" if name.isdigit() else name


def _device_problem(name: str) -> Optional[str]:
    return None if re.fullmatch(r"(GPU|CPU):\d+", name) else "is not a device name like GPU:0 or CPU:0"


def _model_problem(model: str) -> Optional[str]:
    if model in MODEL_NAMES or (model.endswith(MODEL_FILE_SUFFIX) and len(model) > len(MODEL_FILE_SUFFIX)):
        return None
    return f"is neither a built-in model ({', '.join(MODEL_NAMES)}) nor a {MODEL_FILE_SUFFIX} file"


RAY_LOCAL = "local"  # ``--ray`` alone: a Ray runtime started on this machine for the experiment
RAY_CLIENT_SCHEME = "ray://"
_RAY_ADDRESS = re.compile(r"^(?P<host>[A-Za-z0-9_.\-]+|\[[0-9A-Fa-f:.]+\]):(?P<port>\d{1,5})$")


class RayAddress(NamedTuple):
    """Where trials train on Ray: ``local`` (a runtime of this machine), a head's ``HOST:PORT``, or a Ray Client
    ``ray://HOST:PORT``."""

    client: bool
    host: str
    port: int

    def __str__(self) -> str:
        return f"{RAY_CLIENT_SCHEME if self.client else ''}{self.host}:{self.port}"


def ray_address_parts(text: str) -> Optional[RayAddress]:
    """``HOST:PORT`` or ``ray://HOST:PORT`` read into parts; None for ``local`` or for anything else."""
    client = text.startswith(RAY_CLIENT_SCHEME)
    match = _RAY_ADDRESS.match(text[len(RAY_CLIENT_SCHEME):] if client else text)
    if not match or not 0 < int(match["port"]) < 65536:
        return None
    return RayAddress(client, match["host"], int(match["port"]))


def _ray_address_problem(address: str) -> Optional[str]:
    if address == RAY_LOCAL or ray_address_parts(address) is not None:
        return None
    return f"is not {RAY_LOCAL}, HOST:PORT of a Ray head or {RAY_CLIENT_SCHEME}HOST:PORT (e.g. 10.0.0.5:6379)"


def _path_problem(path: str) -> Optional[str]:
    return None if path.strip() else "is empty: give a folder, or leave the setting out"


def _weights_problem(weights: str) -> Optional[str]:
    return None if weights.strip() else f"is empty: give one of {', '.join(WEIGHT_CHOICES)} or a weights file"


@dataclass
class ExperimentConfig:
    """Everything that defines an experiment; recorded verbatim as ``config`` in experiment.json."""

    data_dir: str = _setting(
        label="Data folder", help="Folder with one sub-folder of images per class.", flag="data", kind="text",
        group="data", metavar="DATA")
    batch_sizes: list[int] = _setting(
        label="Batch sizes", help="Batch sizes to compare; each trains the same network from the same initial "
        "weights on the same split.", flag="--batch-sizes", kind="list", item="int", low=1, group="training",
        metavar="N", example="32 256 or 32,256", parse=parse_batch_sizes)
    epochs: int = _setting(
        50, label="Epochs", help="Most epochs a run may train (early stopping may end it sooner).",
        flag="--epochs", kind="int", low=1, high=100_000, group="training", metavar="N")
    patience: int = _setting(
        5, label="Patience", help="Stop a run after this many epochs without a better validation accuracy, "
        "keeping its best weights (0: off).", flag="--patience", kind="int", low=0, high=100_000, low_text="off",
        group="training", metavar="N")
    image_size: Optional[int] = _setting(
        None, label="Image size", help="Side of the square images the network sees, in pixels; auto: the data "
        f"set's recommended size (the demo's is 32), else {FALLBACK_IMAGE_SIZE}.", flag="--image-size",
        kind="int", low=16, high=1024, none_text="auto", none_word="auto", unit=" px", group="data",
        metavar="N|auto")
    val_split: float = _setting(
        0.25, label="Validation split", help="Share of each class held out for validation; the same split for "
        "every batch size.", flag="--val-split", kind="float", low=0.0, high=1.0, low_open=True, high_open=True,
        percent=True, decimals=1, group="data", metavar="FRACTION")
    lr: float = _setting(
        0.001, label="Learning rate", help="Adam learning rate at the reference batch size, before any scaling "
        "(e.g. 0.001 or 1e-3).", flag="--lr", kind="float", low=0.0, high=10.0, low_open=True, group="training",
        metavar="LR")
    seed: int = _setting(
        0, label="Seed", help="Seeds the split, the initial weights and the augmentation: the same seed repeats an "
        "experiment.", flag="--seed", kind="int", low=0, high=2**31 - 1, group="training", metavar="N")
    augment: bool = _setting(
        True, label="Augment training images", help="Random shear, zoom, shift and horizontal flip of the training "
        "images, as in the seed notebook.", flag="--no-augment", kind="bool", group="data")
    out: str = _setting(
        "checkpoints", label="Experiments folder", help="Folder that receives one sub-folder per experiment.",
        flag="--out", kind="text", group="advanced", metavar="DIR")
    precision: str = _setting(
        "auto", label="Precision", help="auto: mixed precision where the device runs it faster (bf16 on CPUs with "
        "AVX512-BF16, float16 on recent GPUs), else 32-bit floats.", flag="--precision", kind="text",
        choices=PRECISIONS, group="advanced")
    lr_scaling: str = _setting(
        "none", label="LR scaling", help="Scale the learning rate with the batch size relative to the reference "
        "batch: linearly (Goyal et al. 2017) or with the square root.", flag="--lr-scaling", kind="text",
        choices=LR_SCALINGS, group="advanced")
    lr_reference_batch: Optional[int] = _setting(
        None, label="LR reference batch", help="The batch size the learning rate belongs to when it is scaled.",
        flag="--lr-reference-batch", kind="int", low=1, high=1_000_000, none_text="the smallest batch size",
        group="advanced", metavar="N")
    warmup_epochs: float = _setting(
        0.0, label="Warm-up epochs", help="Raise the learning rate linearly from zero over this many epochs.",
        flag="--warmup-epochs", kind="float", low=0.0, high=10_000.0, decimals=1, group="advanced", metavar="E")
    budget: str = _setting(
        "epochs", label="Budget", help="What every run gets the same amount of: epochs, optimizer steps (a larger "
        "batch gets more epochs) or wall-clock time.", flag="--budget", kind="text", choices=BUDGETS,
        group="advanced")
    budget_seconds: Optional[float] = _setting(
        None, label="Time budget", help="Wall-clock seconds each run may train, for the time budget.",
        flag="--budget-seconds", kind="float", low=0.0, high=10_000_000.0, low_open=True, decimals=0,
        none_text="none", unit=" s per run", group="advanced", metavar="SECONDS")
    repeats: int = _setting(
        1, label="Repeats", help="Train every batch size this many times with different seeds (the same seeds for "
        "every batch size), to see the spread.", flag="--repeats", kind="int", low=1, high=100, group="study",
        metavar="N")
    target_accuracy: Optional[float] = _setting(
        None, label="Target accuracy", help="Validation accuracy the time-to-target comparison uses.",
        flag="--target-accuracy", kind="float", low=0.0, high=1.0, low_open=True, percent=True, decimals=1,
        none_text="auto (95 % of the best)", none_word="auto", group="advanced", metavar="FRACTION|auto")
    noise_scale: bool = _setting(
        False, label="Estimate the gradient noise scale", help="Estimate the gradient noise scale B_simple at each "
        "epoch end, a hint of the largest useful batch size (costs extra passes).", flag="--noise-scale",
        kind="bool", group="advanced")
    name: Optional[str] = _setting(
        None, label="Name", help="Name of the experiment folder, to find it again in the history.", flag="--name",
        kind="text", none_text="time, data and batch sizes", group="training", metavar="NAME")
    devices: Optional[list[str]] = _setting(
        None, label="Devices", help="Devices to train on, e.g. GPU:0 GPU:1 (or 0 1); several split each batch "
        "between them (MirroredStrategy).", flag="--devices", kind="list", item="text",
        none_text="every visible GPU, else the CPU", group="scale", metavar="DEVICE", example="GPU:0 GPU:1",
        parse=parse_devices, check=_device_problem)
    parallel: bool = _setting(
        False, label="One run per device, in parallel", help="Train the batch sizes at the same time, one run per "
        "device in its own process, instead of splitting each batch.", flag="--parallel", kind="bool",
        group="scale")
    lr_grid: int = _setting(
        1, label="LR grid", help="Learning rates tried per batch size, log-spaced around the (scaled) learning rate.",
        flag="--lr-grid", kind="int", low=1, high=9, group="study", metavar="N")
    lr_grid_factor: float = _setting(
        3.0, label="Grid factor", help="Ratio between neighbouring learning rates of the grid (3 with a grid of 3: "
        "lr/3, lr, 3 lr).", flag="--lr-grid-factor", kind="float", low=1.0, high=100.0, low_open=True, decimals=2,
        group="study", metavar="F")
    lrs: Optional[list[float]] = _setting(
        None, label="Learning rates", help="Explicit learning rates, the same for every batch size, instead of a "
        "grid.", flag="--lrs", kind="list", item="float", low=0.0, high=10.0, low_open=True,
        none_text="the learning rate (or its grid)", group="study", metavar="LR", example="0.001 0.003",
        parse=parse_lrs)
    tune: str = _setting(
        "grid", label="Tuning", help="grid: every trial trains its full budget; halving: successive halving stops "
        "the weaker learning rates of each batch size early.", flag="--tune", kind="text", choices=TUNE_METHODS,
        group="study")
    halving_eta: int = _setting(
        3, label="Halving eta", help="Successive halving keeps the best 1/eta of each batch size's learning rates "
        "at each rung.", flag="--halving-eta", kind="int", low=2, high=100, group="study", metavar="ETA")
    model: str = _setting(
        "seed", label="Model", help="seed (the notebook's CNN), seed-bn (with batch normalization), a Keras "
        "Applications backbone (mobilenetv3small, mobilenetv3large, efficientnetb0, resnet50) or your own "
        ".keras file.", flag="--model", kind="text", group="model", metavar="NAME|FILE.keras",
        check=_model_problem)
    weights: str = _setting(
        "none", label="Weights", help="Initial weights: none (random), imagenet (a pretrained backbone), from-file "
        "(those in the .keras file) or a weights file.", flag="--weights", kind="text", group="model",
        metavar="none|imagenet|from-file|FILE", check=_weights_problem)
    freeze_backbone: bool = _setting(
        False, label="Freeze the backbone", help="Train the new head only; the backbone's batch normalization stays "
        "in inference mode.", flag="--freeze-backbone", kind="bool", group="model")
    fine_tune_from: Optional[str] = _setting(
        None, label="Fine-tune from", help="Unfreeze the backbone from this layer on (a layer name of the backbone).",
        flag="--fine-tune-from", kind="text", none_text="no layer", group="model", metavar="LAYER")

    ray_address: Optional[str] = _setting(
        None, label="Run trials on a Ray cluster", help="Schedule the trials on Ray: HOST:PORT of a running "
        f"cluster's head (ray start --head), {RAY_CLIENT_SCHEME}HOST:10001, or {RAY_LOCAL} (--ray alone) for a Ray "
        "runtime on this machine.", flag="--ray", kind="text", none_text="off: trials train on this machine",
        bare=RAY_LOCAL, group="scale", metavar="ADDRESS", example="10.0.0.5:6379", check=_ray_address_problem)
    trial_gpus: float = _setting(
        1.0, label="GPUs per trial", help="GPUs each trial asks Ray for where the cluster has GPUs; a fraction "
        "below 1 shares a GPU between trials.", flag="--trial-gpus", kind="float", low=0.0, high=64.0,
        low_open=True, decimals=2, group="scale", metavar="N")
    trial_cpus: int = _setting(
        1, label="CPUs per trial", help="CPUs each trial asks Ray for; its TensorFlow uses that many threads.",
        flag="--trial-cpus", kind="int", low=1, high=1024, group="scale", metavar="N")
    ray_retries: int = _setting(
        2, label="Retries after a lost node", help="Times a trial segment whose node or worker is lost is started "
        "again on another node before the trial fails.", flag="--ray-retries", kind="int", low=0, high=100,
        group="scale", metavar="N")
    ray_data_path: Optional[str] = _setting(
        None, label="Data folder on the nodes", help="The data folder as every Ray node sees it (a shared file "
        "system); each node then decodes it itself instead of receiving the images through Ray's object store.",
        flag="--ray-data-path", kind="text", none_text="sent through Ray's object store", group="scale",
        metavar="DIR", check=_path_problem)

    def problems(self) -> list[Problem]:
        """Every bad setting, in field order, then the settings that do not go together."""
        found = [Problem(name, text) for name in SETTINGS
                 if (text := value_problem(name, getattr(self, name))) is not None]
        bad = {p.field for p in found}
        return found + _combination_problems(self, bad)

    def validate(self) -> "ExperimentConfig":
        """Raise ConfigError for the first bad setting; return self to allow chaining."""
        found = self.problems()
        if found:
            raise ConfigError(found[0])
        return self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ExperimentConfig":
        """Build from a record's ``config``: keys this version does not know are ignored, new ones get defaults."""
        values = {k: v for k, v in data.items() if k in SETTINGS}
        values["batch_sizes"] = list(values.get("batch_sizes", []))
        return cls(**values)


SETTINGS: dict[str, Setting] = {f.name: f.metadata["setting"] for f in fields(ExperimentConfig)}
DEFAULTS: dict[str, Any] = {f.name: f.default for f in fields(ExperimentConfig) if f.default is not dataclasses.MISSING}
REQUIRED = tuple(name for name in SETTINGS if name not in DEFAULTS)  # data folder and batch sizes
OPTIONAL = frozenset(name for name, value in DEFAULTS.items() if value is None)  # None is a meaning, not a gap


# -- checks --------------------------------------------------------------------------------------------

def _number(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _range_text(spec: Setting) -> str:
    low, high = spec.low, spec.high
    if low is None and high is None:
        return ""
    if high is None:
        if low == 0 and spec.low_open:
            return "positive"
        return f"more than {_number(low)}" if spec.low_open else f"at least {_number(low)}"
    if low is None:
        return f"at most {_number(high)}"
    if spec.low_open and spec.high_open:
        return f"between {_number(low)} and {_number(high)} (exclusive)"
    if spec.low_open:
        start = "positive" if low == 0 else f"more than {_number(low)}"
        return f"{start} and at most {_number(high)}"
    return f"between {_number(low)} and {_number(high)}"


def _in_range(spec: Setting, value: float) -> bool:
    if spec.low is not None and (value < spec.low or (spec.low_open and value == spec.low)):
        return False
    return spec.high is None or (value < spec.high or (not spec.high_open and value == spec.high))


def _scalar_problem(kind: str, spec: Setting, value: Any) -> Optional[str]:
    """What is wrong with one value of ``kind`` (a list's item, or a setting), or None."""
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int) or not _in_range(spec, value):
            return f"must be a whole number {_range_text(spec)}".rstrip()
    elif kind == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return "is not a number"
        if not _in_range(spec, value):
            return f"must be {_range_text(spec)}"
    elif kind == "bool":
        if not isinstance(value, bool):
            return "must be true or false"
    elif not isinstance(value, str):
        return "must be text"
    elif spec.choices and value not in spec.choices:
        return f"is not one of {', '.join(spec.choices)}"
    elif spec.check is not None:
        return spec.check(value)
    return None


def _item_rule(spec: Setting) -> str:
    """How a list's item must look, in words: '... is not a positive whole number'."""
    if spec.check is not None:
        return spec.check("") or "is not valid"
    if spec.item == "int":
        return "is not a positive whole number" if spec.low == 1 and spec.high is None else \
            f"must be a whole number {_range_text(spec)}"
    return f"must be a number, {_range_text(spec)}"


def _bad_item(spec: Setting, value: Any) -> bool:
    return _scalar_problem(spec.item, spec, value) is not None


def value_problem(name: str, value: Any) -> Optional[str]:
    """What is wrong with ``value`` for setting ``name`` alone (not how it goes with the others), or None."""
    spec = SETTINGS[name]
    if value is None:
        return None if name in OPTIONAL else "must be given"
    if spec.kind != "list":
        problem = _scalar_problem(spec.kind, spec, value)
        return None if problem is None else f"{value!r} {problem}"
    if not isinstance(value, (list, tuple)):
        return f"{value!r} is not a list; type e.g. {spec.example}"
    if not value:
        return f"give at least one, e.g. {spec.example.split(' or ')[0]}"
    for item in value:
        if _bad_item(spec, item):
            return f"{item!r} {_item_rule(spec)}; type e.g. {spec.example}"
    dupes = sorted({v for v in value if list(value).count(v) > 1}, key=str)
    if dupes:
        return f"{', '.join(map(_number, dupes))} given more than once"
    return None


def _combination_problems(c: ExperimentConfig, bad: set[str]) -> list[Problem]:
    """Settings that are fine alone but not together; a rule is skipped when one of its settings is bad."""
    def ok(*names: str) -> bool:
        return not bad.intersection(names)

    found = []
    if ok("budget", "budget_seconds") and c.budget == "time" and c.budget_seconds is None:
        found.append(Problem("budget", "'time' needs a positive number of seconds per run (the time budget)"))
    if ok("lrs", "lr_grid") and c.lrs is not None and c.lr_grid > 1:
        found.append(Problem("lrs", f"give explicit learning rates or an lr grid above 1 (it is {c.lr_grid}), "
                                    "not both"))
    if ok("tune", "budget") and c.tune == "halving" and c.budget == "time":
        found.append(Problem("tune", "halving needs an epochs or steps budget"))
    if ok("tune", "lrs", "lr_grid") and c.tune == "halving" and c.lr_grid == 1 and (c.lrs is None or len(c.lrs) < 2):
        found.append(Problem("tune", "halving needs several learning rates: an lr grid above 1, or explicit lrs"))
    found += _ray_problems(c, ok)
    backbone = BACKBONE_IMAGE_SIZES.get(c.model) if ok("model") else None
    if ok("model", "weights"):
        if c.weights == "imagenet" and backbone is None:
            found.append(Problem("weights", f"'imagenet' needs a Keras Applications backbone: one of "
                                            f"{', '.join(BACKBONE_IMAGE_SIZES)}"))
        if c.weights == "from-file" and not c.model.endswith(MODEL_FILE_SUFFIX):
            found.append(Problem("weights", f"'from-file' means the weights inside a {MODEL_FILE_SUFFIX} model; "
                                            "pick one, or weights none or imagenet"))
    if ok("model", "freeze_backbone", "fine_tune_from") and c.model in SEED_MODELS:
        for name in ("freeze_backbone", "fine_tune_from"):
            if getattr(c, name):
                found.append(Problem(name, f"the {c.model} model has no backbone; pick a backbone or a "
                                           f"{MODEL_FILE_SUFFIX} model"))
    if backbone is not None and ok("image_size") and c.image_size is not None and c.image_size < backbone.minimum:
        found.append(Problem("image_size", f"{c.image_size} px is below {c.model}'s minimum of {backbone.minimum} "
                                           f"px; use {backbone.native} (its native size) or at least "
                                           f"{backbone.minimum}"))
    return found


def _ray_problems(c: ExperimentConfig, ok: Callable[..., bool]) -> list[Problem]:
    """Ray schedules every trial on the cluster's devices itself: this machine's device settings do not apply."""
    found = []
    if ok("ray_address") and c.ray_address is not None:
        for name, given in (("parallel", c.parallel), ("devices", c.devices is not None)):
            if ok(name) and given:
                found.append(Problem(name, "not with trials on Ray (Ray gives each trial its own devices: use "
                                           "--trial-gpus)"))
    if ok("trial_gpus") and c.trial_gpus > 1 and c.trial_gpus != int(c.trial_gpus):
        found.append(Problem("trial_gpus", f"{c.trial_gpus:g}: above 1 it must be a whole number of GPUs "
                                           "(only a GPU shared in fractions below 1 can be split)"))
    return found


# -- text in, text out: the command line and the window's text fields ---------------------------------

def parse_value(name: str, text: str) -> Any:
    """A setting's value from what a user typed; ConfigError (with its ``problem``) says what to type instead."""
    spec = SETTINGS[name]
    word = text.strip()
    if spec.none_word and word.lower() == spec.none_word:
        return None
    if spec.parse is not None:
        return spec.parse(text)
    or_none = f" or {spec.none_word}" if spec.none_word else ""
    value: Any = word
    if spec.kind == "int":
        try:
            value = _whole(word)
        except ValueError:
            raise ConfigError(Problem(name, f"'{word}' is not a whole number{or_none}")) from None
    elif spec.kind == "float":
        try:
            value = float(word)
        except ValueError:
            raise ConfigError(Problem(name, f"'{word}' is not a number{or_none} (e.g. 0.001 or 1e-3)")) from None
    elif not word and name in OPTIONAL:
        return None
    problem = value_problem(name, value)
    if problem:
        raise ConfigError(Problem(name, problem))
    return value


def format_value(name: str, value: Any) -> str:
    """The text that ``parse_value`` reads back as ``value`` (floats keep every digit)."""
    if value is None:
        return SETTINGS[name].none_word
    if isinstance(value, (list, tuple)):
        return " ".join(map(str, value))
    return str(value)


def default_text(name: str) -> str:
    """A setting's default in words, for --help and the window."""
    spec = SETTINGS[name]
    if name not in DEFAULTS:
        return "required"
    value = DEFAULTS[name]
    if value is None:
        return spec.none_text or "none"
    if spec.kind == "bool":
        return "on" if value else "off"
    return format_value(name, value)


def command_line(config: ExperimentConfig, omit: tuple[str, ...] = ()) -> list[str]:
    """Arguments that make ``run`` (or ``worker``) train exactly ``config``; settings at their defaults are left
    out, the data folder and batch sizes never."""
    args = [config.data_dir, "--batch-sizes", *map(str, config.batch_sizes)]
    for name, spec in SETTINGS.items():
        value = getattr(config, name)
        if name in REQUIRED or name in omit or value == DEFAULTS[name]:
            continue
        if spec.kind == "bool":
            args.append(spec.flag)  # the flag turns its default around (--no-augment, --parallel)
        elif spec.kind == "list":
            args += [spec.flag, *map(str, value)]
        else:
            args += [spec.flag, format_value(name, value)]
    return args

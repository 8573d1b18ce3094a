"""Which device trains and at which precision: small, explicit decisions with unit-tested logic.

The facts (GPUs and their compute capability, CPU flags) are gathered once;
the decisions are pure functions of those facts so they can be tested on a
machine without the hardware.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass, field
from pathlib import Path

BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")
POLICIES = {"fp32": "float32", "bf16": "mixed_bfloat16", "fp16": "mixed_float16"}


@dataclass(frozen=True)
class Gpu:
    name: str
    compute_capability: tuple[int, int] | None


@dataclass(frozen=True)
class DeviceFacts:
    gpus: tuple[Gpu, ...] = ()
    cpu_flags: frozenset[str] = field(default_factory=frozenset)
    cpu_name: str = ""


@dataclass(frozen=True)
class PrecisionChoice:
    policy: str  # a Keras dtype policy name
    label: str  # fp32 | mixed (bf16) | mixed (fp16)
    reason: str


def choose_precision(requested: str, facts: DeviceFacts) -> PrecisionChoice:
    """``auto``: float16 on CUDA GPUs of compute capability 7.0+, bfloat16 on CPUs with
    AVX512-BF16 or AMX, else fp32. ``mixed`` forces the device's mixed type; ``fp32`` forces fp32."""
    if requested == "fp32":
        return PrecisionChoice(POLICIES["fp32"], "fp32", "fp32 requested")
    if facts.gpus:
        capable = all(g.compute_capability and g.compute_capability >= (7, 0) for g in facts.gpus)
        if capable:
            return PrecisionChoice(POLICIES["fp16"], "mixed (fp16)", "GPU with tensor cores (compute capability 7.0+)")
        if requested == "mixed":
            return PrecisionChoice(POLICIES["fp16"], "mixed (fp16)",
                                   "mixed requested; this GPU lacks tensor cores, so expect little gain")
        return PrecisionChoice(POLICIES["fp32"], "fp32", "GPU below compute capability 7.0: fp16 would not be faster")
    native = sorted(flag for flag in BF16_CPU_FLAGS if flag in facts.cpu_flags)
    if native:
        return PrecisionChoice(POLICIES["bf16"], "mixed (bf16)", f"CPU supports {', '.join(native)}")
    if requested == "mixed":
        return PrecisionChoice(POLICIES["bf16"], "mixed (bf16)",
                               "mixed requested; this CPU has no native bfloat16, so it may be slower")
    return PrecisionChoice(POLICIES["fp32"], "fp32", "CPU without native bfloat16 (AVX512-BF16 or AMX)")


def cpu_facts(cpuinfo: Path = Path("/proc/cpuinfo")) -> tuple[frozenset[str], str]:
    """CPU flags and model name from /proc/cpuinfo (empty where it does not exist)."""
    flags: set[str] = set()
    name = platform.processor() or platform.machine()
    try:
        for line in cpuinfo.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "flags" and not flags:
                flags = set(value.split())
            elif key.strip() == "model name":
                name = value.strip()
    except OSError:
        pass
    return frozenset(flags), name


def detect() -> DeviceFacts:
    """Ask TensorFlow for GPUs, turning on memory growth so the window and others share the card.

    Must run before TensorFlow touches a GPU; later calls find growth already set.
    """
    import tensorflow as tf

    gpus = []
    for device in tf.config.list_physical_devices("GPU"):
        try:
            tf.config.experimental.set_memory_growth(device, True)
        except RuntimeError:  # already initialised: growth was set by an earlier call
            pass
        details = tf.config.experimental.get_device_details(device)
        gpus.append(Gpu(details.get("device_name", device.name), details.get("compute_capability")))
    flags, name = cpu_facts()
    return DeviceFacts(tuple(gpus), flags, name)


def describe(facts: DeviceFacts) -> str:
    """One line for the window and the record: which device trains."""
    import os

    if facts.gpus:
        names = ", ".join(g.name + (f" (cc {g.compute_capability[0]}.{g.compute_capability[1]})"
                                    if g.compute_capability else "") for g in facts.gpus)
        return f"GPU: {names}"
    return f"CPU: {facts.cpu_name or 'unknown'} ({os.cpu_count()} cores)"

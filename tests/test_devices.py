"""Precision choice per kind of device, from device facts, and the /proc/cpuinfo parser."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.train.devices import DeviceFacts, Gpu, choose_precision, cpu_facts

VOLTA = DeviceFacts(gpus=(Gpu("Tesla V100", (7, 0)),))
PASCAL = DeviceFacts(gpus=(Gpu("Tesla P100", (6, 0)),))
MIXED_GPUS = DeviceFacts(gpus=(Gpu("A100", (8, 0)), Gpu("GTX 1080", (6, 1))))
UNKNOWN_GPU = DeviceFacts(gpus=(Gpu("mystery", None),))
SAPPHIRE = DeviceFacts(cpu_flags=frozenset({"avx512f", "amx_bf16", "amx_tile"}))
COOPER = DeviceFacts(cpu_flags=frozenset({"avx512f", "avx512_bf16"}))
PLAIN_CPU = DeviceFacts(cpu_flags=frozenset({"avx2", "fma"}))


@pytest.mark.parametrize("facts, requested, policy", [
    (VOLTA, "auto", "mixed_float16"), (VOLTA, "mixed", "mixed_float16"), (VOLTA, "fp32", "float32"),
    (PASCAL, "auto", "float32"), (PASCAL, "mixed", "mixed_float16"), (PASCAL, "fp32", "float32"),
    (MIXED_GPUS, "auto", "float32"), (UNKNOWN_GPU, "auto", "float32"),
    (SAPPHIRE, "auto", "mixed_bfloat16"), (SAPPHIRE, "mixed", "mixed_bfloat16"), (SAPPHIRE, "fp32", "float32"),
    (COOPER, "auto", "mixed_bfloat16"), (COOPER, "mixed", "mixed_bfloat16"), (COOPER, "fp32", "float32"),
    (PLAIN_CPU, "auto", "float32"), (PLAIN_CPU, "mixed", "mixed_bfloat16"), (PLAIN_CPU, "fp32", "float32"),
])
def test_policy_per_device_and_request(facts: DeviceFacts, requested: str, policy: str) -> None:
    assert choose_precision(requested, facts).policy == policy


def test_labels_and_reasons_say_why() -> None:
    assert choose_precision("auto", VOLTA).label == "mixed (fp16)"
    assert choose_precision("auto", SAPPHIRE).reason == "CPU supports amx_bf16"
    assert choose_precision("auto", COOPER).label == "mixed (bf16)"
    assert "no native bfloat16" in choose_precision("mixed", PLAIN_CPU).reason
    assert "lacks tensor cores" in choose_precision("mixed", PASCAL).reason
    assert choose_precision("auto", PLAIN_CPU).label == "fp32"


CPUINFO = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 7B13 64-Core Processor
flags\t\t: fpu vme sse2 avx2 fma avx512_bf16 amx_bf16

processor\t: 1
model name\t: AMD EPYC 7B13 64-Core Processor
flags\t\t: fpu vme sse2
"""


def test_cpuinfo_parser_reads_flags_of_the_first_cpu_and_the_name(tmp_path: Path) -> None:
    sample = tmp_path / "cpuinfo"
    sample.write_text(CPUINFO)
    flags, name = cpu_facts(sample)
    assert name == "AMD EPYC 7B13 64-Core Processor"
    assert {"avx2", "avx512_bf16", "amx_bf16"} <= flags and "processor" not in flags
    assert choose_precision("auto", DeviceFacts(cpu_flags=flags, cpu_name=name)).policy == "mixed_bfloat16"


def test_cpuinfo_parser_without_the_file(tmp_path: Path) -> None:
    flags, name = cpu_facts(tmp_path / "missing")
    assert flags == frozenset() and isinstance(name, str)

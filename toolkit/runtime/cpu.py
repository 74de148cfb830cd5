"""What this CPU computes natively, read one way for the whole toolkit.

Reduced precisions run at speed only on CPUs with units for them: bf16 on AVX512-BF16
or AMX-BF16, fp16 on AVX512-FP16 or AMX-FP16. Without them oneDNN emulates the
arithmetic (slower than fp32) and OpenVINO computes in something else (on AMD Zen 4,
which has AVX512-BF16 but no FP16 units, an fp16 request computes in bf16). emo-bench
plans from these flags, the OpenVINO runtime refuses from them, and tests fake them
(`cpu_flags` is looked up at each call) to run the matrix of CPU kinds on any machine.
"""

from __future__ import annotations

import platform
from pathlib import Path

REDUCED_UNITS: dict[str, tuple[tuple[str, str], ...]] = {
    "bf16": (("avx512_bf16", "AVX512-BF16"), ("amx_bf16", "AMX-BF16")),
    "fp16": (("avx512_fp16", "AVX512-FP16"), ("amx_fp16", "AMX-FP16")),
}
"""Per reduced precision, the /proc/cpuinfo flags of the units that compute it natively
(any one is enough) and their names in vendors' documents."""

ISA_FLAGS = frozenset({"avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16",
                       "avx512_fp16", "amx_bf16", "amx_int8", "amx_fp16"})
"""The vector and matrix extensions that decide CPU inference speed, named with every
figure a benchmark reports."""

CPUINFO = Path("/proc/cpuinfo")


def _cpuinfo(field: str) -> str | None:
    """The first value of `field` in /proc/cpuinfo (Linux), or None."""
    try:
        for line in CPUINFO.read_text().splitlines():
            if line.startswith(field):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_model() -> str:
    return _cpuinfo("model name") or platform.processor() or platform.machine()


def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags as /proc/cpuinfo names them (empty where it cannot be read)."""
    return frozenset((_cpuinfo("flags") or "").split())


def flags_known() -> bool:
    """Whether this machine states its CPU features (Linux x86-64 does; elsewhere nothing is
    refused on their account, and runtimes' own read-back decides)."""
    return bool(cpu_flags())


def native_precision(precision: str) -> bool:
    """True when this CPU computes `precision` natively (fp32 and int8 always do)."""
    units = REDUCED_UNITS.get(precision)
    return units is None or bool(cpu_flags() & {flag for flag, _ in units})


def units_of(precision: str) -> str:
    """The units `precision` needs, as a reader would look them up: 'AVX512-FP16 or AMX-FP16'."""
    return " or ".join(name for _, name in REDUCED_UNITS[precision])


def no_units(precision: str) -> str:
    """The one phrase every refusal on this account uses (Python, C and emo-bench)."""
    return f"this CPU has no {precision} units ({units_of(precision)})"


def isa_summary() -> list[str]:
    """The ISA_FLAGS this CPU has, sorted: what reports print beside every figure."""
    return sorted(cpu_flags() & ISA_FLAGS)

"""Which CPU this process runs on, as far as speed is concerned: every speed figure carries it.

Row-wise int8 is several times faster than fp32 on an AVX-512 VNNI/AMX Xeon and many times slower on an
AVX2-only EPYC; bf16 is native on the first and emulated (slowly) on the second. A figure without the
CPU it came from cannot be trusted on another one, so benchmarks, the load-time precision decision and
the GPU check's dry run all describe the CPU with `describe_cpu`.
"""

from __future__ import annotations

import functools
import platform
from pathlib import Path

# /proc/cpuinfo flags that decide the speed of int8 and bf16 kernels
SPEED_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8")


@functools.lru_cache(maxsize=1)
def _proc_cpuinfo() -> dict[str, str]:
    """The first processor's fields of /proc/cpuinfo ({} where there is none: macOS, Windows)."""
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return {}
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if fields:
                break  # the first processor is enough: all cores of a machine are the same model
            continue
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    return fields


def cpu_model() -> str:
    """'Intel(R) Xeon(R) Processor (family 6 model 207)': the name, and the numbers a VM's vague name hides."""
    info = _proc_cpuinfo()
    name = info.get("model name") or platform.processor() or platform.machine() or "unknown CPU"
    if "cpu family" in info and "model" in info:
        name += f" (family {info['cpu family']} model {info['model']})"
    return name


def cpu_flags() -> dict[str, bool]:
    """The speed-relevant instruction sets of this CPU, as the kernel reports them."""
    flags = set(_proc_cpuinfo().get("flags", "").split())
    if not flags:  # no /proc/cpuinfo: ask torch's cpuinfo for what it can tell
        import torch

        return {
            "avx2": torch.cpu._is_avx2_supported(),
            "avx512f": torch.cpu._is_avx512_supported(),
            "avx512_vnni": torch.cpu._is_vnni_supported(),
            "avx512_bf16": torch.cpu._is_avx512_bf16_supported(),
            "amx_int8": torch.cpu._is_amx_tile_supported(),
        }
    return {flag: flag in flags for flag in SPEED_FLAGS}


def torch_capability() -> str:
    """The vector width torch's own kernels use here ('AVX2', 'AVX512', …); ATEN_CPU_CAPABILITY lowers it."""
    import torch  # here, not at import: command lines that only describe the CPU answer --help without it

    return torch.backends.cpu.get_cpu_capability()


def native_bf16() -> bool:
    """True when bf16 matrix products run on bf16 instructions here, not emulated in fp32.

    Both the CPU (AVX-512 BF16 or AMX) and torch's kernels (AVX-512 capability, not lowered by
    ATEN_CPU_CAPABILITY) must have it: emulated bf16 is many times slower than fp32.
    """
    flags = cpu_flags()
    has_bf16 = flags.get("avx512_bf16", False) or flags.get("amx_bf16", False)
    return has_bf16 and torch_capability().startswith("AVX512")


def describe_cpu() -> dict:
    """The CPU of this process for a benchmark's JSON: model, torch's capability, flags, threads."""
    import torch

    return {
        "cpu": cpu_model(),
        "capability": torch_capability(),
        "flags": cpu_flags(),
        "native_bf16": native_bf16(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }


def cpu_label() -> str:
    """One line for tables and logs: 'Intel(R) Xeon(R) … (family 6 model 207), AVX512, VNNI, AMX'."""
    flags = cpu_flags()
    extras = [
        name
        for name, present in (
            ("VNNI", flags.get("avx512_vnni") or flags.get("avx_vnni")),
            ("AMX", flags.get("amx_int8")),
        )
        if present
    ]
    return ", ".join([cpu_model(), torch_capability(), *extras])

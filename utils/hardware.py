"""Threads and precision chosen from the machine, once, at the start of a run (--threads, --mixed_precision auto).

Threads. On a 2-core VM where another process keeps one core busy, two torch (OpenMP) threads
spin-wait on each other and a step takes longer than with one (docs/speed.md has the table, from
`python benchmarks/bench_step.py --threads N [--busy]`). A passive OpenMP wait policy slows the idle
machine and still loses to one thread on a busy one, so `auto` instead counts the cores that are actually free (other processes' CPU time in /proc/stat
over a fraction of a second) and uses that many threads: all of them on an idle machine, fewer on a
busy one.

Precision. bf16 autocast where the hardware runs it natively: CUDA GPUs with bf16 support, and CPUs
with AVX-512-BF16 or AMX-BF16 (the `avx512_bf16` / `amx_bf16` flags of /proc/cpuinfo); fp32 elsewhere.
"""
import os
import time

import torch


def _cpu_times():
    """{cpu index: (idle, total)} jiffies from /proc/stat, or None where it does not exist."""
    try:
        with open("/proc/stat") as f:
            lines = [line.split() for line in f if line.startswith("cpu") and line[3].isdigit()]
    except OSError:
        return None
    times = {}
    for fields in lines:
        values = [int(v) for v in fields[1:]]
        times[int(fields[0][3:])] = (values[3] + (values[4] if len(values) > 4 else 0), sum(values))
    return times


def allowed_cpus() -> list:
    """The CPUs this process may run on (its affinity mask where the OS has one)."""
    return sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count()))


def free_cpus(interval: float = 0.3) -> int:
    """Number of this process's CPUs not kept busy by *other* processes during `interval` seconds.

    Busy time of the allowed CPUs minus this process's own CPU time (its OpenMP threads may still be
    spinning from an earlier torch call), rounded to whole cores.
    """
    allowed = allowed_cpus()
    before, own_before, start = _cpu_times(), time.process_time(), time.perf_counter()
    if before is None:
        return len(allowed)
    time.sleep(interval)
    after, own, elapsed = _cpu_times(), time.process_time() - own_before, time.perf_counter() - start
    busy = idle_total = 0
    for cpu in allowed:
        if cpu in before and cpu in after:
            idle, total = (a - b for a, b in zip(after[cpu], before[cpu]))
            busy, idle_total = busy + total - idle, idle_total + total
    if idle_total == 0:
        return len(allowed)
    busy_seconds = busy / idle_total * elapsed * len(allowed)  # jiffies -> seconds of CPU time
    others = max(0.0, busy_seconds - own) / elapsed  # cores busy with other work
    return max(0, len(allowed) - round(others))


def configure_threads(spec: str) -> str:
    """Apply --threads ('auto' or a number) to torch; returns a one-line description of the choice."""
    available = len(allowed_cpus())
    if spec == "auto":
        if os.environ.get("OMP_NUM_THREADS"):  # the user's explicit setting wins
            return f"{torch.get_num_threads()} torch threads (OMP_NUM_THREADS)"
        count = max(1, min(available, free_cpus()))
        torch.set_num_threads(count)
        busy = available - count
        return f"{count} torch thread{'s' * (count > 1)}" + (f" ({busy} of {available} cores busy with other work)"
                                                              if busy else "")
    count = int(spec)
    torch.set_num_threads(count)
    return f"{count} torch thread{'s' * (count > 1)} (--threads)"


def cpu_has_fast_bf16() -> bool:
    """True if /proc/cpuinfo lists AVX-512-BF16 or AMX-BF16."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line for line in f if line.startswith("flags")), "").split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


AUTOCAST_DTYPES = {"no": None, "bf16": torch.bfloat16, "fp16": torch.float16}  # --mixed_precision -> autocast dtype


def resolve_mixed_precision(value: str, cpu: bool = False) -> str:
    """--mixed_precision auto -> 'bf16' where bf16 autocast is native and fast, else 'no'; others unchanged."""
    if value != "auto":
        return value
    if torch.cuda.is_available() and not cpu:
        return "bf16" if torch.cuda.is_bf16_supported() else "no"
    return "bf16" if cpu_has_fast_bf16() else "no"


def emulated_bf16(value: str, cpu: bool = False) -> bool:
    """True for --mixed_precision bf16 on a CPU without native bf16 (no AVX-512-BF16 or AMX-BF16): torch then
    emulates it, an order of magnitude slower than fp32 (docs/speed.md)."""
    on_cpu = cpu or not torch.cuda.is_available()
    return value == "bf16" and on_cpu and not cpu_has_fast_bf16()


# glibc mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3


def keep_freed_memory() -> bool:
    """Let glibc's malloc keep freed memory for reuse instead of handing it back to the kernel.

    A training step allocates and frees the same large activation buffers (tens of MB each at
    256^2) again and again. glibc serves such blocks with mmap and unmaps them on free, so every
    step faults the pages in anew (zeroed by the kernel). With large blocks taken from the heap and the
    heap never trimmed, the pages are reused, not added (docs/speed.md: the whole-process time, from
    `python benchmarks/bench_train.py --whole_process`). Returns whether it applied: only on glibc (Linux), and not when the user set any
    MALLOC_* variable (theirs win).
    """
    import ctypes
    import platform

    if platform.libc_ver()[0] != "glibc" or any(k.startswith("MALLOC_") for k in os.environ):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    return all(libc.mallopt(param, value) == 1 for param, value in (
        (_M_MMAP_THRESHOLD, 1 << 30), (_M_TRIM_THRESHOLD, (1 << 31) - 1), (_M_TOP_PAD, 1 << 28)))

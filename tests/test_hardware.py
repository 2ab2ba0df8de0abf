"""Threads from the free cores and the auto precision (utils/hardware.py)."""
import os
import subprocess
import sys
import time

import pytest
import torch

from utils import hardware


def test_explicit_threads_and_omp_num_threads_win(monkeypatch):
    before = torch.get_num_threads()
    try:
        assert "1 torch thread" in hardware.configure_threads("1") and torch.get_num_threads() == 1
        monkeypatch.setenv("OMP_NUM_THREADS", "1")
        monkeypatch.setattr(hardware, "free_cpus", lambda: pytest.fail("must not be measured"))
        assert "OMP_NUM_THREADS" in hardware.configure_threads("auto")
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("free,expected", [(0, 1), (1, 1), (64, None)])
def test_auto_threads_use_the_free_cores(monkeypatch, free, expected):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(hardware, "free_cpus", lambda: free)
    available = len(os.sched_getaffinity(0))
    before = torch.get_num_threads()
    try:
        hardware.configure_threads("auto")
        assert torch.get_num_threads() == (expected or available)
    finally:
        torch.set_num_threads(before)


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2 or not os.path.exists("/proc/stat"), reason="needs 2 CPUs")
def test_free_cpus_sees_a_busy_core_but_not_its_own_threads():
    torch.rand(500, 500) @ torch.rand(500, 500)  # our own OpenMP threads may spin afterwards: not "other work"
    spinner = subprocess.Popen([sys.executable, "-c", "import time\nt = time.time()\nwhile time.time() - t < 3: pass"])
    try:
        time.sleep(0.3)
        assert hardware.free_cpus() <= len(os.sched_getaffinity(0)) - 1
    finally:
        spinner.kill()
        spinner.wait()


def test_auto_precision(monkeypatch):
    assert hardware.resolve_mixed_precision("fp16") == "fp16" and hardware.resolve_mixed_precision("no") == "no"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(hardware, "cpu_has_fast_bf16", lambda: True)
    assert hardware.resolve_mixed_precision("auto") == "bf16"
    monkeypatch.setattr(hardware, "cpu_has_fast_bf16", lambda: False)
    assert hardware.resolve_mixed_precision("auto") == "no"
    assert hardware.emulated_bf16("bf16") and not hardware.emulated_bf16("no")  # bf16 asked for: warned
    monkeypatch.setattr(hardware, "cpu_has_fast_bf16", lambda: True)
    assert not hardware.emulated_bf16("bf16")


def test_keep_freed_memory_applies_on_glibc_unless_the_user_set_malloc_variables(monkeypatch):
    import platform

    from utils.hardware import keep_freed_memory
    monkeypatch.setenv("MALLOC_ARENA_MAX", "2")
    assert keep_freed_memory() is False  # the user's MALLOC_* settings win
    monkeypatch.delenv("MALLOC_ARENA_MAX")
    for key in [k for k in __import__("os").environ if k.startswith("MALLOC_")]:
        monkeypatch.delenv(key)
    assert keep_freed_memory() is (platform.libc_ver()[0] == "glibc")

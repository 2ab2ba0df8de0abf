"""Fixtures shared by the test modules, and a private temp folder for the whole session."""
import os
import re
import shutil
import tempfile

import pytest
import torch

from tests.helpers import write_images


SYSTEM_TEMP_VARIABLES = ("TMPDIR", "TORCHINDUCTOR_CACHE_DIR", "GRADIO_TEMP_DIR")
# What the tests' libraries and the page would leave in the system's temp folder if the redirection below
# missed one: gradio_client's download folders (40 hex digits, empty ones included), torch's compile cache,
# gradio's cache and the page's job folders.
LEFTOVER = re.compile(r"^([0-9a-f]{40}|torchinductor_.*|gradio|gan_paint_app_.*)$")


@pytest.hookimpl(trylast=True)  # after pytest's tmp_path plugin has set up its factory
def pytest_configure(config):
    """What the tests' libraries would write to the system's temp folder (gradio_client's downloads, gradio's
    uploads, torch's compile cache, the web page's job folders, subprocesses' temp files) goes under pytest's
    own session folder instead (pytest.ini's --basetemp), set before any test module imports gradio."""
    base = config._tmp_path_factory.getbasetemp()
    config._system_temp_before = set(os.listdir(tempfile.gettempdir()))
    config._system_temp = tempfile.gettempdir()
    system = base / "system_temp"
    system.mkdir(exist_ok=True)
    config._saved_temp = {name: os.environ.get(name) for name in SYSTEM_TEMP_VARIABLES}, tempfile.tempdir
    os.environ.update({"TMPDIR": str(system), "TORCHINDUCTOR_CACHE_DIR": str(system / "torchinductor"),
                       "GRADIO_TEMP_DIR": str(system / "gradio")})
    tempfile.tempdir = str(system)


def pytest_unconfigure(config):
    """Put the temp settings back; after a run in which every test passed, remove the session folder too, so
    that a passing run leaves nothing behind (a failed run's files stay, to look at)."""
    saved = getattr(config, "_saved_temp", None)
    if saved is None:
        return
    variables, tempfile.tempdir = saved
    for name, value in variables.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    if getattr(config, "_all_passed", False):
        shutil.rmtree(config._tmp_path_factory.getbasetemp(), ignore_errors=True)


def pytest_sessionfinish(session, exitstatus):
    """A run fails if it left any of LEFTOVER's names in the system's temp folder (an empty folder too)."""
    config = session.config
    before = getattr(config, "_system_temp_before", None)
    if before is not None:
        left = sorted(n for n in set(os.listdir(config._system_temp)) - before if LEFTOVER.match(n))
        if left:
            print(f"\nerror: the tests left {', '.join(left)} in {config._system_temp}", flush=True)
            session.exitstatus = exitstatus = 1
    config._all_passed = exitstatus == 0


@pytest.fixture(scope="session", autouse=True)
def one_thread():
    """Tiny models gain nothing from threads; on a 2-core machine shared with another job they lose ~10x."""
    threads, omp = torch.get_num_threads(), os.environ.get("OMP_NUM_THREADS")
    torch.set_num_threads(1)
    os.environ["OMP_NUM_THREADS"] = "1"  # --threads auto then keeps 1 (utils/hardware.py)
    yield
    torch.set_num_threads(threads)
    if omp is None:
        os.environ.pop("OMP_NUM_THREADS", None)
    else:
        os.environ["OMP_NUM_THREADS"] = omp


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """train/ (4 generated 80x64 images) and test/ (2 images of another size); treat as read-only."""
    root = tmp_path_factory.mktemp("data")
    write_images(root / "train", 4)
    write_images(root / "test", 2, start_seed=100, size=(70, 90))
    return root


MAX_TEMP_MB = 40  # per test; a random full-size VGG19 file alone is 548 MB


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    report = (yield).get_result()
    if report.when == "call":
        item.call_failed = report.failed


@pytest.fixture(autouse=True)
def small_temp_files(request):
    """Keep the system's temp folder small: a test may not leave more than MAX_TEMP_MB in its tmp_path,
    and a test that passed leaves nothing (pytest would keep the files of the last 3 runs). A failed
    test's files stay, to look at."""
    folder = request.getfixturevalue("tmp_path") if "tmp_path" in request.fixturenames else None
    yield
    if folder is None:
        return
    size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 2 ** 20
    assert size <= MAX_TEMP_MB, f"{request.node.name} left {size:.0f} MB in {folder} (at most {MAX_TEMP_MB} MB)"
    if not getattr(request.node, "call_failed", True):
        shutil.rmtree(folder, ignore_errors=True)


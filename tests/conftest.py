"""Fixtures shared by the test modules."""
import pytest
import torch

from tests.helpers import write_images


@pytest.fixture(scope="session", autouse=True)
def one_thread():
    """Tiny models gain nothing from threads; on a 2-core machine shared with another job they lose ~10x."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """train/ (4 generated 80x64 images) and test/ (2 images of another size); treat as read-only."""
    root = tmp_path_factory.mktemp("data")
    write_images(root / "train", 4)
    write_images(root / "test", 2, start_seed=100, size=(70, 90))
    return root


MAX_TEMP_MB = 10  # per test: a run of the suite must not fill the system's temp folder


@pytest.fixture(autouse=True)
def small_temp_files(request):
    """Fail a test that leaves more than MAX_TEMP_MB in its tmp_path (pytest keeps the last 3 runs' files)."""
    folder = request.getfixturevalue("tmp_path") if "tmp_path" in request.fixturenames else None
    yield
    if folder is not None:
        size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 2 ** 20
        assert size <= MAX_TEMP_MB, f"{request.node.name} left {size:.0f} MB in {folder} (at most {MAX_TEMP_MB} MB)"

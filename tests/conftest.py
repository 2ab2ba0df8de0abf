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

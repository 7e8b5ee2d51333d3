import os

import pytest
import torch


def pytest_configure(config):
    config.addinivalue_line("markers", "needs_cuda: the test runs only where a CUDA device is present")


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    if os.environ.get("FAIL_WITHOUT_CUDA") == "1":
        raise pytest.UsageError("FAIL_WITHOUT_CUDA=1 but no CUDA device is available")
    skip = pytest.mark.skip(reason="no CUDA device")
    for item in items:
        if "needs_cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _restore_rng_state():
    """Every test starts from the same seed and leaves the global RNG as it found it."""
    state = torch.get_rng_state()
    torch.manual_seed(0)
    yield
    torch.set_rng_state(state)


@pytest.fixture
def one_thread():
    """torch on one thread for the test: tiny networks only add thread contention on a shared machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)

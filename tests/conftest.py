"""Shared test configuration."""

from collections.abc import Iterator

import pytest
import torch


def pytest_runtest_setup(item: pytest.Item) -> None:
    """A selected GPU test fails, never skips, on a machine without CUDA."""
    if item.get_closest_marker("gpu") and not torch.cuda.is_available():
        pytest.fail("this test needs a CUDA device (GPU tests run with `pytest -m gpu`)")


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread() -> Iterator[None]:
    """Run torch on one intra-op thread: on a small machine (CI has 2 cores) shared with other
    processes, spinning OpenMP threads make the networks many times slower than one thread."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


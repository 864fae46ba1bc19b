"""Shared test configuration."""

import pytest
import torch


def pytest_runtest_setup(item: pytest.Item) -> None:
    """A selected GPU test fails, never skips, on a machine without CUDA."""
    if item.get_closest_marker("gpu") and not torch.cuda.is_available():
        pytest.fail("this test needs a CUDA device (GPU tests run with `pytest -m gpu`)")

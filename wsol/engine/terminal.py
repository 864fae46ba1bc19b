"""Progress bars shown only when stderr is a terminal, so piped logs stay readable (torch-free)."""

from __future__ import annotations

import sys
from collections.abc import Iterable

from tqdm import tqdm

__all__ = ["on_terminal", "progress"]


def on_terminal() -> bool:
    """Whether progress bars are shown: stderr is a terminal."""
    return sys.stderr.isatty()


def progress(items: Iterable, description: str, **options) -> Iterable:
    """tqdm progress over ``items``, shown only on a terminal."""
    return tqdm(items, desc=description, leave=False, disable=not on_terminal(), **options)

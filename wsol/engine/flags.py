"""Command-line value parsing shared by every entry point (torch-free)."""

from __future__ import annotations

import argparse

__all__ = ["str2bool"]

_TRUE = ("yes", "true", "t", "y", "1")
_FALSE = ("no", "false", "f", "n", "0")


def str2bool(value: str | bool) -> bool:
    """Parse yes/true/t/y/1 and no/false/f/n/0, case-insensitive (SPEC §8.1)."""
    if isinstance(value, bool):
        return value
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise argparse.ArgumentTypeError(f"expected a boolean (true/false, yes/no, 1/0), got {value!r}")

"""Markdown tables of results."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["format_value", "results_markdown"]


def format_value(value: Any) -> str:
    """Floats with two decimals, everything else as ``str``."""
    return f"{value:.2f}" if isinstance(value, float) else str(value)


def results_markdown(metrics: Mapping[str, Any], settings: Mapping[str, Any]) -> str:
    """The `results_{tag}.md` of one evaluation: a title from ``settings``, then one row per
    metric."""
    lines = [f"# {settings['experiment_name']}: {settings['method']} on "
             f"{settings['dataset_name']} {settings['split']}", "",
             f"{settings['architecture']} ({settings['family']} family, "
             f"{settings['model_structure']}), checkpoint `{settings['checkpoint']}`", "",
             "| Metric | Value |", "|---|---|"]
    lines.extend(f"| {name} | {format_value(value)} |" for name, value in metrics.items())
    return "\n".join(lines) + "\n"

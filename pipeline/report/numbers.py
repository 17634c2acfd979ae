"""How the report writes numbers: ``undefined`` for null or NaN, intervals, p-values. Also the
Jinja2 filters of the report template."""

from __future__ import annotations

from typing import Any

from pipeline.evaluation.contracts import Interval

UNDEFINED = "undefined"


def fmt(value: Any, digits: int = 3) -> str:
    """A number for the report; ``undefined`` for null or NaN (e.g. AP without faces)."""
    if value is None or (isinstance(value, float) and value != value):
        return UNDEFINED
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def ci(entry: Interval | dict[str, Any] | None, digits: int = 3, percent: bool = False) -> str:
    """``0.912 [0.871, 0.950]`` from an interval (``91% [87%, 95%]`` with ``percent``)."""
    if isinstance(entry, dict):
        entry = Interval.parse(entry)
    if entry is None or entry.estimate is None:
        return UNDEFINED
    scale, unit = (100, "%") if percent else (1, "")
    d = 0 if percent else digits

    def number(value: float | None) -> str:
        return fmt(None if value is None else value * scale, d) + unit

    return f"{number(entry.estimate)} [{number(entry.low)}, {number(entry.high)}]"


def p_value(value: float | None, samples: int) -> str:
    """A bootstrap p-value; 0 means smaller than the resolution 1 / samples."""
    return f"p < {1 / samples:.3g}" if value == 0 else f"p = {fmt(value)}"

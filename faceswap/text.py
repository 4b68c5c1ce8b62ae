"""Wording of the lines the commands print."""

from __future__ import annotations


def duration(seconds: float) -> str:
    """A length of time as people say it: ``"42 s"``, ``"12.5 min"``, ``"3.25 h"``."""
    if seconds < 100:
        return f"{seconds:.0f} s"
    if seconds < 6000:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.2f} h"


def counted(n: int, noun: str) -> str:
    """``"1 frame"``, ``"2 frames"``: a count with its noun (plural by an added s)."""
    return f"{n} {noun}" + ("" if n == 1 else "s")

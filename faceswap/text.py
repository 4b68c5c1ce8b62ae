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


def index_ranges(indices: list[int], step: int = 1, limit: int = 8) -> str:
    """Sorted frame numbers as runs: ``"100-109, 250, 300-302"``; after ``limit`` runs,
    ``"... and 12 more"`` (numbers ``step`` apart count as one run)."""
    runs: list[list[int]] = []
    for i in sorted(indices):
        if runs and i - runs[-1][1] == step:
            runs[-1][1] = i
        else:
            runs.append([i, i])
    words = [f"{lo}" if lo == hi else f"{lo}-{hi}" for lo, hi in runs[:limit]]
    more = len(runs) - limit
    return ", ".join(words) + (f" and {more} more" if more > 0 else "")

"""Wording of the lines the commands print."""

from __future__ import annotations


def counted(n: int, noun: str) -> str:
    """``"1 frame"``, ``"2 frames"``: a count with its noun (plural by an added s)."""
    return f"{n} {noun}" + ("" if n == 1 else "s")

"""Wording helpers."""

from __future__ import annotations

from faceswap.text import counted


def test_counted_says_one_thing_and_many_things() -> None:
    assert counted(1, "frame") == "1 frame"
    assert [counted(n, "face") for n in (0, 2)] == ["0 faces", "2 faces"]

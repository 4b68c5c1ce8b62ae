"""Wording helpers."""

from __future__ import annotations

from faceswap.text import counted, duration


def test_counted_says_one_thing_and_many_things() -> None:
    assert counted(1, "frame") == "1 frame"
    assert [counted(n, "face") for n in (0, 2)] == ["0 faces", "2 faces"]


def test_duration_in_the_unit_people_use() -> None:
    assert [duration(s) for s in (42, 750, 11_700)] == ["42 s", "12.5 min", "3.25 h"]

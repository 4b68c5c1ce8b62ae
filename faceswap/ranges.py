"""Frame ranges as users write them (``"10-50,90-100,300-"``), for extract and convert."""

from __future__ import annotations

from collections.abc import Iterable

from faceswap.errors import FaceswapError

#: (first, last) frame indices, inclusive; ``last`` None runs to the end.
FrameRange = tuple[int, "int | None"]


def parse_frame_ranges(text: str) -> tuple[FrameRange, ...]:
    """``"10-50,90-100,300-"`` (commas or spaces; single frames as ``"7"``) as ranges.

    Raises:
        FaceswapError: a part that is not ``N``, ``N-M`` with N <= M, or ``N-``.
    """
    ranges: list[FrameRange] = []
    for part in text.replace(",", " ").split():
        first, dash, last = part.partition("-")
        try:
            lo = int(first)
            hi = (int(last) if last else None) if dash else lo
        except ValueError:
            lo, hi = -1, None
        if lo < 0 or (hi is not None and hi < lo):
            raise FaceswapError(
                f"--frame-ranges: '{part}' is not a range of frame numbers; write them as "
                "first-last (inclusive, from 0), e.g. 10-50,90-100 or 300- for the rest"
            )
        ranges.append((lo, hi))
    return tuple(ranges)


def format_frame_ranges(ranges: Iterable[FrameRange]) -> str:
    """The text :func:`parse_frame_ranges` reads back: ``"10-50,300-"``."""
    return ",".join(f"{lo}-{'' if hi is None else hi}" for lo, hi in ranges)


def as_frame_ranges(value: str | Iterable[FrameRange]) -> tuple[FrameRange, ...]:
    """A config's ranges, as text or (from YAML and JSON) lists, checked like parsed text."""
    ranges = parse_frame_ranges(value) if isinstance(value, str) else tuple(value)
    return parse_frame_ranges(format_frame_ranges(tuple(r) for r in ranges))  # type: ignore[misc]


def in_frame_ranges(index: int, ranges: tuple[FrameRange, ...]) -> bool:
    """Whether frame ``index`` is in one of ``ranges``; any frame is when there are none."""
    return not ranges or any(lo <= index and (hi is None or index <= hi) for lo, hi in ranges)


def last_in_ranges(ranges: tuple[FrameRange, ...]) -> int | None:
    """The last frame the ranges hold; None when one runs to the end (or there are none)."""
    if not ranges or any(hi is None for _, hi in ranges):
        return None
    return max(hi for _, hi in ranges if hi is not None)

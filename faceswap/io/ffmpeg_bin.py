"""Locate the ffmpeg binary: a new enough system ffmpeg, else the one imageio-ffmpeg ships."""

from __future__ import annotations

import functools
import logging
import os
import re
import shutil
import subprocess
from dataclasses import dataclass

from faceswap.errors import FaceswapError
from faceswap.io import ffmpeg_args

log = logging.getLogger(__name__)

FFMPEG_ENV = "FACESWAP_FFMPEG"

#: Oldest ffmpeg the project's audio sync, frame counts and test media are verified with.
#: Older builds place re-encoded Opus ~10 ms early, lose the audio offset of MPEG-TS
#: sources and count frames of edit-listed or audio-first files differently (seen with 7.0
#: and 5.1), so a system ffmpeg older than this is passed over for the bundled one.
MIN_VERSION = (9, 0)


@dataclass(frozen=True)
class FfmpegChoice:
    """The ffmpeg in use and why.

    Attributes:
        path: the executable.
        version: ``(major, minor)``; ``(99, 0)`` for git builds, which are newer than any
            release.
        source: ``$FACESWAP_FFMPEG``, ``PATH`` or ``imageio-ffmpeg``.
        note: why a system ffmpeg on PATH was passed over, or a warning about an old forced
            one; empty when there is nothing to say.
    """

    path: str
    version: tuple[int, int]
    source: str
    note: str = ""


def parse_version(text: str) -> tuple[int, int]:
    """``(major, minor)`` from ``ffmpeg -version`` output.

    Release builds say ``ffmpeg version 7.0.2-static`` or ``n9.0.2-17-g...``; git builds of
    the development branch (``N-12345-g...``, ``2024-05-13-git-...``) count as ``(99, 0)``.
    """
    match = re.search(r"ffmpeg version n?(\d+)\.(\d+)", text)
    if match:
        return int(match.group(1)), int(match.group(2))
    return (99, 0)


@functools.cache
def version_of(ffmpeg: str) -> tuple[int, int]:
    """``(major, minor)`` of the given ffmpeg executable (see :func:`parse_version`)."""
    try:
        out = subprocess.run(
            ffmpeg_args.version_args(ffmpeg), capture_output=True, text=True, check=False
        ).stdout
    except OSError as exc:
        raise FaceswapError(f"cannot run ffmpeg {ffmpeg} ({exc}); fix or remove it") from None
    return parse_version(out)


def _dotted(version: tuple[int, int]) -> str:
    return "git" if version == (99, 0) else f"{version[0]}.{version[1]}"


def _bundled() -> str:
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except Exception as exc:  # imageio-ffmpeg raises RuntimeError when its binary is missing
        raise FaceswapError(
            f"no usable ffmpeg found ({exc}); `pip install -U imageio-ffmpeg` or install "
            f"ffmpeg {_dotted(MIN_VERSION)} or newer"
        ) from None


@functools.cache
def locate_ffmpeg() -> FfmpegChoice:
    """Pick the ffmpeg executable to use.

    Order: ``$FACESWAP_FFMPEG`` (taken as it is: a warning notes an old one), then ``ffmpeg``
    on PATH if it is at least :data:`MIN_VERSION`, then imageio-ffmpeg's bundled binary.
    ffprobe is never needed: probing parses ``ffmpeg -i`` output.
    """
    minimum = _dotted(MIN_VERSION)
    override = os.environ.get(FFMPEG_ENV)
    if override:
        if not (os.path.isfile(override) and os.access(override, os.X_OK)):
            raise FaceswapError(
                f"${FFMPEG_ENV}={override} is not an executable file; fix or unset it"
            )
        version = version_of(override)
        note = ""
        if version < MIN_VERSION:
            note = (
                f"WARNING: ffmpeg {_dotted(version)} is older than {minimum}, the oldest "
                "tested; audio sync and frame counts may be off (unset it to use the bundled one)"
            )
            log.warning(note)
        return FfmpegChoice(override, version, f"${FFMPEG_ENV}", note)
    system = shutil.which("ffmpeg")
    notes = []
    if system:
        version = version_of(system)
        if version >= MIN_VERSION:
            return FfmpegChoice(system, version, "PATH")
        notes.append(
            f"system ffmpeg {_dotted(version)} at {system} is older than {minimum}: not used "
            f"(set ${FFMPEG_ENV} to force it)"
        )
    bundled = _bundled()
    version = version_of(bundled)
    if version < MIN_VERSION:
        notes.append(
            f"WARNING: the bundled ffmpeg is {_dotted(version)}, older than {minimum}: "
            "`pip install -U imageio-ffmpeg`"
        )
        log.warning(notes[-1])
    return FfmpegChoice(bundled, version, "imageio-ffmpeg", "; ".join(notes))


def find_ffmpeg() -> str:
    """Path of the ffmpeg executable to use (see :func:`locate_ffmpeg`)."""
    return locate_ffmpeg().path

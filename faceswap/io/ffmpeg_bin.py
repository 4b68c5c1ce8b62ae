"""Locate the ffmpeg binary: system ffmpeg when on PATH, else the one imageio-ffmpeg ships."""

from __future__ import annotations

import functools
import os
import shutil

from faceswap.errors import FaceswapError

FFMPEG_ENV = "FACESWAP_FFMPEG"


@functools.cache
def find_ffmpeg() -> str:
    """Path of the ffmpeg executable to use.

    Order: ``$FACESWAP_FFMPEG``, ``ffmpeg`` on PATH, imageio-ffmpeg's bundled binary. ffprobe is
    never needed: probing parses ``ffmpeg -i`` output.
    """
    override = os.environ.get(FFMPEG_ENV)
    if override:
        if not (os.path.isfile(override) and os.access(override, os.X_OK)):
            raise FaceswapError(
                f"${FFMPEG_ENV}={override} is not an executable file; fix or unset it"
            )
        return override
    system = shutil.which("ffmpeg")
    if system:
        return system
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except Exception as exc:  # imageio-ffmpeg raises RuntimeError when its binary is missing
        raise FaceswapError(
            f"no ffmpeg found ({exc}); install ffmpeg or `pip install imageio-ffmpeg`"
        ) from None

"""Click options shared by several commands."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

T = TypeVar("T")

#: ``-m MODEL``: the face-swap model of convert and tune.
model_dir_option = click.option(
    "-m",
    "--model",
    "model_dir",
    required=True,
    type=click.Path(path_type=Path),
    help="Model folder written by `faceswap train`.",
)
#: ``-a ALIGNMENTS``: the faces of INPUT that extract found, for convert and tune.
alignments_option = click.option(
    "-a",
    "--alignments",
    type=click.Path(path_type=Path),
    default=None,
    help="alignments.json (or extract folder) of INPUT; without it faces are detected on the fly.",
)
#: ``--mask-model``: the mask model of the segment masks, for convert and tune.
mask_model_option = click.option(
    "--mask-model",
    type=click.Path(path_type=Path),
    default=None,
    help="A mask model (`faceswap train-masks -m` folder) for --mask segment and segment-both.",
)

#: ``--rotate``: also find faces turned in the image plane, for extract and convert.
rotate_option = click.option(
    "--rotate",
    default=None,
    metavar="DEGREES",
    help="Also look for faces turned in the picture (a tilted head, a sideways shot) where "
    "none is found upright: a step (45 tries 45, -45, 90 ... 180) or a list of angles "
    "clockwise (90,-90). Turned faces are fitted upright (and followed between detections). "
    "Slower.",
)
#: ``--normalise``: what the detector sees in dark or flat footage, for extract and convert.
normalise_option = click.option(
    "--normalise",
    "--normalize",
    "normalise",
    type=click.Choice(["none", "clahe", "hist", "mean"]),
    default="none",
    show_default=True,
    help="Even out the luma of the copy the detector and landmark model see (dark or flat "
    "footage: clahe); the crops are cut from the frame as it is.",
)
#: ``--refeed``: steadier landmarks from averaged fits, for extract and convert.
refeed_option = click.option(
    "--refeed",
    type=click.IntRange(0, 64),
    default=0,
    show_default=True,
    help="Fit each face's landmarks this many more times in slightly moved boxes and average "
    "them (faceswap's re-feed): steadier crops, also for photos; 8 halves the shimmer.",
)

_GRADE_HELP = {
    "brightness": "the swapped face toward white (> 0: that percent of the way) or black",
    "contrast": "its lightness spread about its own mean, in percent (-100: flat)",
    "saturation": "its colourfulness, in percent (-100: grey)",
    "temperature": "warmer (> 0, toward yellow) or cooler (toward blue), -100 to 100",
    "tint": "toward magenta (> 0) or green, -100 to 100",
}


def grade_options(command: Any) -> Any:
    """The manual grade of the swapped face (--brightness, --contrast, --saturation,
    --temperature, --tint; faceswap's manual balance), for convert and tune."""
    for name in reversed(list(_GRADE_HELP)):
        help_text = f"Grade {_GRADE_HELP[name]}; after --colour (0: off)."
        command = click.option(f"--{name}", type=float, default=0.0, help=help_text)(command)
    return command


def erode_side_options(command: Any) -> Any:
    """--erode-top, --erode-bottom, --erode-left, --erode-right (faceswap's per-side
    erosion), for convert and tune."""
    for side in ("right", "left", "bottom", "top"):
        command = click.option(
            f"--erode-{side}",
            type=float,
            default=0.0,
            help=f"Move the mask's {side} edge in by this percent of the face (negative: "
            "out), on top of --erode" + (" (top: the forehead)." if side == "top" else "."),
        )(command)
    return command


def encoder_options(command: Any) -> Any:
    """The encoder options (--codec, --crf, --preset, --pix-fmt) of convert and encode-frames."""
    for option in reversed(_ENCODER_OPTIONS):
        command = option(command)
    return command


_ENCODER_OPTIONS = [
    click.option(
        "--codec",
        default="libx264",
        help="ffmpeg video encoder: libx264, libx265, h264_nvenc..., or auto (the first hardware "
        "H.264 encoder that works here; HEVC for HDR). Lossless: ffv1 in .mkv, or libx264rgb "
        "--crf 0. "
        "For the edit: prores_ks (ProRes 422 HQ) or dnxhd (DNxHR HQ) in .mov.",
    ),
    click.option(
        "--crf",
        type=int,
        default=18,
        help="Constant quality (0 lossless, 18 visually lossless, 23 x264's default).",
    ),
    click.option("--preset", default="medium", help="Encoder speed preset (ultrafast...veryslow)."),
    click.option(
        "--pix-fmt",
        default="auto",
        help="Output pixel format. auto: yuv420p (plays everywhere), yuv444p for odd frame "
        "sizes, lossless RGB for ffv1 and libx264rgb, 4:2:2 for ProRes/DNxHR, 10-bit for HDR "
        "sources; or name one (yuv444p, rgb24 for masters).",
    ),
]


def check_each_input(
    input_path: Path,
    check: Callable[[Path], T],
    flagged: Callable[[T], bool],
    report: Callable[[T], None],
) -> NoReturn:
    """Run ``check`` on INPUT, or on each video of a folder of videos, and exit.

    Each result is reported as it comes; over several inputs one that fails is a line on
    stderr and the others go on. Exits 0 when any result is ``flagged``, 1 when none is, 2
    when an input failed (a single input's failure is the usual one-line error).
    """
    from faceswap.errors import FaceswapError
    from faceswap.io.images import is_image_file
    from faceswap.io.video import list_inputs

    inputs = [input_path] if is_image_file(input_path) else list_inputs(input_path)
    hits = failed = 0
    for path in inputs:
        try:
            result = check(path)
        except FaceswapError as exc:
            if len(inputs) == 1:
                raise
            click.echo(f"faceswap: error: {exc}", err=True)
            failed += 1
            continue
        hits += flagged(result)
        report(result)
    sys.exit(2 if failed else 0 if hits else 1)

"""`faceswap extract-frames`: dump the frames of a video to image files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click


@click.command("extract-frames")
@click.argument("input_path", metavar="INPUT", type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(path_type=Path, file_okay=False),
    help="Folder for the frames (created if needed).",
)
@click.option("--every-nth", default=1, show_default=True, help="Keep one frame in N.")
@click.option("--start", default=0, show_default=True, help="First frame index to keep.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["png", "jpg", "tif", "exr"]),
    default="png",
    show_default=True,
    help="png, tif: lossless; jpg: smaller files; exr: linear half floats for compositing.",
)
@click.option("--jpeg-quality", default=95, show_default=True, help="0-100, for --format jpg.")
@click.option(
    "--overwrite",
    is_flag=True,
    help="Rewrite every frame (default: keep frames from an earlier run, add the missing).",
)
@click.option(
    "--bit-depth",
    type=click.Choice(["auto", "8"]),
    default="auto",
    show_default=True,
    help="auto: PNGs of a video of more than 8 bits (10-bit HDR, ProRes) keep 16 bits; 8: "
    "8-bit PNGs.",
)
@click.option("--no-progress", is_flag=True, help="Hide the progress bar.")
def extract_frames(
    input_path: Path,
    output: Path,
    every_nth: int,
    start: int,
    fmt: str,
    jpeg_quality: int,
    overwrite: bool,
    bit_depth: str,
    no_progress: bool,
) -> None:
    """Write the frames of INPUT (a video, an image folder or a folder of videos) as images.

    Files are named by source frame index, so --every-nth 5 writes frame_000000.png,
    frame_000005.png, ... and they line up with alignments and converted videos. Each video
    of a folder gets its own subfolder of OUTPUT.
    """
    from tqdm import tqdm

    from faceswap.io.frames import ExtractFramesConfig, run_extract_frames

    cfg = ExtractFramesConfig(
        input=input_path,
        output=output,
        every_nth=every_nth,
        start=start,
        format=fmt,
        jpeg_quality=jpeg_quality,
        resume=not overwrite,
        bit_depth=bit_depth,
    )
    bars: list[Any] = []  # opened with the first frame: a bad input's error stands alone

    def progress(done: int, total: int) -> None:
        if not bars:
            bars.append(tqdm(unit="frame", disable=no_progress, leave=False))
        bars[0].total = total
        bars[0].update(done - bars[0].n)

    try:
        result = run_extract_frames(cfg, progress=progress)
    finally:
        for bar in bars:
            bar.close()
    rate = result.frames_written / result.seconds if result.seconds > 0 else 0.0
    fps = f" at {float(result.fps):.3f} fps" if result.fps else ""
    if result.videos > 1:
        fps = f" of {result.videos} videos (one subfolder each)"
    kept = f" (kept {result.kept} from an earlier run)" if result.kept else ""
    click.echo(
        f"wrote {result.frames_written}{kept} of {result.source_frames} frames{fps} to "
        f"{result.output} ({result.first.name if result.first else '-'} .. "
        f"{result.last.name if result.last else '-'}) in {result.seconds:.1f} s "
        f"({rate:.0f} frames/s)"
    )

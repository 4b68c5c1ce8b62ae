"""`faceswap encode-frames`: a folder of frames back into a video, with a source's audio."""

from __future__ import annotations

from pathlib import Path

import click

from faceswap.commands.options import encoder_options


@click.command("encode-frames")
@click.argument("input_path", metavar="FOLDER", type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(path_type=Path),
    help="Video to write (the suffix picks the container: .mp4, .mov, .mkv...).",
)
@click.option(
    "--like",
    type=click.Path(path_type=Path),
    default=None,
    help="The original video: its frame rate, audio, timecode and pixel aspect.",
)
@click.option("--fps", default=None, help="Frame rate without --like: 25, 30000/1001...")
@encoder_options
@click.option("--progress/--no-progress", default=True, help="Show a progress bar.")
def encode_frames(input_path: Path, **options: object) -> None:
    """Encode the frames in FOLDER (natural order) into a video.

    The way back from an image sequence: frames from `faceswap extract-frames`, a converted
    image folder, or frames retouched elsewhere. With --like the original video's rate,
    audio, timecode and pixel aspect come along in sync (and an HDR original's colour
    tags, in 10 bits). Frames that `faceswap convert` wrote stay marked as synthetic
    (container tags and a manifest).
    """
    from faceswap.io.encode import EncodeFramesConfig, run_encode_frames

    result = run_encode_frames(EncodeFramesConfig(input=input_path, **options))  # type: ignore[arg-type]
    click.echo(f"wrote {result.output}: {result.frames} frames at {result.fps} fps")
    if result.manifest is not None:
        click.echo(f"provenance manifest: {result.manifest}")

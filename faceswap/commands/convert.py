"""`faceswap convert`: swap faces in a video, image folder, image or folder of videos."""

from __future__ import annotations

from pathlib import Path

import click

from faceswap.commands.options import (
    alignments_option,
    encoder_options,
    erode_side_options,
    grade_options,
    mask_model_option,
    model_dir_option,
    normalise_option,
    refeed_option,
    rotate_option,
)
from faceswap.convert.colour import COLOUR_MODES
from faceswap.convert.masks import MASK_MODES
from faceswap.convert.pipeline import (
    BIT_DEPTHS,
    BLEND_KEYS,
    DIRECTIONS,
    FRAME_FORMATS,
    SMOOTH_CHOICES,
    ConvertConfig,
    ConvertResult,
    is_video_folder,
    run_convert,
    run_convert_folder,
)
from faceswap.device import DEVICE_CHOICES, amp_hint
from faceswap.errors import FaceswapError
from faceswap.io.images import is_image_file
from faceswap.text import counted


def _modes_help(registry: object, lead: str) -> str:
    lines = [f"{name} ({registry.get(name).help})" for name in registry.names()]  # type: ignore[attr-defined]
    return f"{lead}: " + "; ".join(lines) + "."


@click.command(context_settings={"show_default": True})
@click.argument("input", type=click.Path(path_type=Path))
@model_dir_option
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(path_type=Path),
    help="Output video (suffix picks the container: .mp4, .mkv, .mov...), or a new folder "
    "(no suffix) for the frames as an image sequence (always for an image-folder INPUT); "
    "for a single image INPUT, an image file (.png, .jpg, .tif) or a folder.",
)
@alignments_option
@click.option(
    "--direction",
    type=click.Choice(DIRECTIONS),
    default="a2b",
    help="a2b draws A's faces as B; b2a the other way.",
)
@click.option(
    "--morph",
    type=float,
    default=1.0,
    help="How far toward the other person the faces are drawn (DFL's morph factor; 1: the "
    "whole swap, 0.8 keeps some of the original's look). liae presets.",
)
@click.option(
    "--mask",
    type=click.Choice(MASK_MODES.names()),
    default="hull",
    help=_modes_help(MASK_MODES, "Blend mask"),
)
@mask_model_option
@click.option(
    "--colour",
    "--color",
    "colour",
    type=click.Choice(COLOUR_MODES.names()),
    default="rct",
    help=_modes_help(COLOUR_MODES, "Colour matching"),
)
@click.option(
    "--erode",
    type=float,
    default=0.0,
    help="Shrink the mask by this percent of the face size (negative grows it).",
)
@erode_side_options
@click.option(
    "--blur",
    type=float,
    default=6.0,
    help="Feather the mask edge over this percent of the face size.",
)
@click.option(
    "--sharpen",
    type=float,
    default=0.0,
    help="Unsharp-mask strength for the swapped face (0 off, about 1 strong); negative "
    "softens it for a soft plate (-1: a blur of 3 % of the face).",
)
@click.option(
    "--grain",
    type=float,
    default=0.0,
    help="Add grain to the swapped face up to the plate's own (1 matched, 0 off): the "
    "decoder draws faces cleaner than grainy footage.",
)
@click.option(
    "--motion-blur",
    type=float,
    default=0.0,
    help="Smear the swapped face along its motion since the previous frame, this fraction "
    "of the way (0 off; 0.5 matches a 180-degree shutter), to match the plate's motion blur.",
)
@grade_options
@click.option(
    "--face-scale",
    type=float,
    default=0.0,
    help="Paste the swapped face this percent larger (negative: smaller) about its centre, "
    "when B's face is narrower or wider than A's (-50 to 50).",
)
@click.option(
    "--smooth",
    type=click.Choice(SMOOTH_CHOICES),
    default="auto",
    help="Temporal landmark smoothing against jitter; auto: one-euro for faces "
    "detected on the fly, none with --alignments (extract smoothed them).",
)
@click.option(
    "--detector",
    default="auto",
    help="Face detector for on-the-fly detection (auto, dlib-hog, dlib-cnn, fan).",
)
@click.option(
    "--fill-gaps/--no-fill-gaps",
    default=True,
    help="With --alignments that leave frames out (extracted with --every-nth), detect the "
    "faces of those frames on the fly (--detector, --ref) so every frame is swapped; off, "
    "they pass through unswapped.",
)
@click.option(
    "--detect-every",
    type=int,
    default=5,
    help="Run the detector every N frames and track faces in between.",
)
@click.option(
    "--min-size",
    type=int,
    default=0,
    help="Smallest face to swap, box side in pixels (0: the detector's minimum).",
)
@click.option(
    "--max-faces",
    type=int,
    default=0,
    help="Swap at most this many faces per frame, largest first (0: all).",
)
@rotate_option
@normalise_option
@refeed_option
@click.option(
    "--ref",
    "refs",
    multiple=True,
    type=click.Path(path_type=Path),
    help="Photo of the one person to swap (repeatable); others are left alone.",
)
@click.option(
    "--ref-threshold",
    type=float,
    default=0.6,
    help="Largest identity distance still counted as the --ref person.",
)
@click.option(
    "--not-ref",
    "not_refs",
    multiple=True,
    type=click.Path(path_type=Path),
    help="Photo of a person not to swap (repeatable); with --ref, faces nearer this person "
    "than the --ref one are left alone.",
)
@click.option(
    "-b",
    "--batch-size",
    type=int,
    default=16,
    help="Faces per inference batch, collected across frames.",
)
@click.option("--device", default="auto", help=f"Torch device: {', '.join(DEVICE_CHOICES)}.")
@click.option(
    "--amp",
    is_flag=True,
    help="Mixed precision: float16 on CUDA, bf16 on CPUs with AVX512-BF16/AMX (faster).",
)
@encoder_options
@click.option(
    "--frame-format",
    type=click.Choice(FRAME_FORMATS),
    default="png",
    help="Format of frames written to a folder: png and tif are lossless (16 bits per "
    "channel from a source of more than 8, else 8); jpg (quality 95, 8 bits) for photos.",
)
@click.option(
    "--blend-ranges",
    "blend_ranges",
    type=click.Path(path_type=Path),
    default=None,
    help="YAML list of blend settings for some frames (as DeepFaceLab's merger keeps per "
    "frame): '- {frames: 0-119, colour: sot, erode: 4}'; keys: frames and "
    + ", ".join(BLEND_KEYS)
    + ". The last entry holding a frame wins; the options here apply elsewhere.",
    callback=lambda ctx, param, value: _blend_ranges(value),
)
@click.option(
    "--output-scale",
    default=100.0,
    show_default=True,
    help="Write the frames at this percent of their size (50: a quick preview render); the "
    "faces are swapped at full size first.",
)
@click.option(
    "--resume",
    is_flag=True,
    help="Go on where a stopped run (Ctrl-C, SIGTERM, a crash) of the same command left "
    "off: the frames of an -o frames folder, or the videos of a folder of videos.",
)
@click.option(
    "--sequence",
    is_flag=True,
    help="INPUT, a folder of images, holds the frames of one shot (a plate sequence): faces "
    "found on the fly are tracked and smoothed and --motion-blur follows them, as in a video.",
)
@click.option(
    "--bit-depth",
    type=click.Choice(BIT_DEPTHS),
    default="auto",
    show_default=True,
    help="auto: a source of more than 8 bits (10-bit video, 16-bit PNG/TIFF) is processed "
    "in 16 bits and written in 10 bits (SDR H.264: 8 unless --pix-fmt says; frames: 16); 8: "
    "everything in 8 bits (faster).",
)
@click.option(
    "--matte",
    type=click.Path(path_type=Path),
    default=None,
    help="Also write the blend mask (white where the swapped face was blended in) as a "
    "video encoded like the output, or a PNG folder when the output is frames: a matte for "
    "compositing.",
)
@click.option(
    "--frame-ranges",
    default="",
    help="Swap only in these frames, e.g. 10-50,90-100,300- (inclusive, counted from 0); "
    "the others pass through untouched. Default: every frame.",
)
@click.option(
    "--ranges-only",
    is_flag=True,
    help="Write only the frames of --frame-ranges, into a frames folder (-o without a "
    "suffix): a quick look at a few frames while tuning the blend.",
)
@click.option("--progress/--no-progress", default=True, help="Show a progress bar.")
def convert(input: Path, **options: object) -> None:
    """Swap the faces in INPUT (a video, an image folder, one image, or a folder of videos)
    and write the result (for a folder of videos: a folder of videos with the same names).

    The output keeps INPUT's frame count, frame rate and audio, and is marked as synthetic:
    container metadata plus a JSON manifest next to it (OUTPUT.json).
    """
    options["refs"] = tuple(options["refs"])  # type: ignore[arg-type]
    cfg = ConvertConfig(input=input, **options)  # type: ignore[arg-type]
    if is_video_folder(cfg.input):
        batch = run_convert_folder(cfg)
        for result in batch.results:
            _report(result)
        if batch.skipped:
            click.echo(f"skipped {len(batch.skipped)} videos converted by the stopped run")
        if batch.failed:
            names = ", ".join(video.name for video, _ in batch.failed)
            raise FaceswapError(
                f"{len(batch.failed)} of {len(batch.failed) + len(batch.results)} videos were "
                f"not converted ({names}); see the errors above, fix them and rerun"
            )
    else:
        result = run_convert(cfg)
        _report(result)
        if cfg.input.is_file() and not is_image_file(cfg.input) and result.output.is_dir():
            click.echo(
                f"frames carry no audio: `faceswap encode-frames {result.output} -o VIDEO "
                f"--like {cfg.input}` encodes them with the original's audio, rate and timecode"
            )
    if hint := amp_hint(cfg.device, cfg.amp):
        click.echo(hint, err=True)


def _blend_ranges(path: Path | None) -> tuple[object, ...]:
    """The entries of a --blend-ranges YAML file."""
    if path is None:
        return ()
    import yaml

    try:
        entries = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise FaceswapError(f"--blend-ranges {path}: cannot read ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or "unreadable"
        raise FaceswapError(f"--blend-ranges {path}: not valid YAML ({where}{problem})") from None
    if not isinstance(entries, list):
        raise FaceswapError(
            f"--blend-ranges {path}: expected a list of entries like '- frames: 0-119'"
        )
    return tuple(entries)


def _report(result: ConvertResult) -> None:
    resumed = f" (and {result.resumed} from the stopped run)" if result.resumed else ""
    click.echo(
        f"wrote {result.output}: {counted(result.frames, 'frame')}{resumed}, "
        f"{counted(result.faces_swapped, 'face')} swapped in "
        f"{counted(result.frames_swapped, 'frame')}, {result.fps:.1f} frames/s on {result.device}"
    )
    click.echo(f"provenance manifest: {result.manifest}")
    if result.matte is not None:
        click.echo(f"matte: {result.matte}")

"""`faceswap extract`: detect, landmark, align and crop faces."""

from __future__ import annotations

from pathlib import Path

import click

from faceswap.commands.options import normalise_option, refeed_option, rotate_option
from faceswap.errors import FaceswapError
from faceswap.faces.align import CENTERINGS
from faceswap.faces.detectors import DETECTOR_CHOICES


@click.command()
@click.argument("input_path", metavar="INPUT", type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    required=True,
    help="Folder for the crops and alignments.json (one subfolder per video of a folder).",
)
@click.option(
    "-d",
    "--detector",
    type=click.Choice(DETECTOR_CHOICES),
    default="auto",
    show_default=True,
    help="Face detector: auto = fan when its weights are cached or can be fetched, else dlib-hog.",
)
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda[:N] or mps.")
@click.option("--size", type=int, default=256, show_default=True, help="Crop side in pixels.")
@click.option(
    "--coverage",
    type=float,
    default=0.8,
    show_default=True,
    help="Fraction (0-1] of the crop the --centering region fills.",
)
@click.option(
    "--centering",
    type=click.Choice(list(CENTERINGS)),
    default="face",
    show_default=True,
    help="legacy = brows to lip, face = forehead to chin, head = whole head.",
)
@click.option(
    "--every-nth",
    type=int,
    default=1,
    show_default=True,
    help="Process every n-th frame of a video.",
)
@click.option(
    "--detect-every",
    type=int,
    default=5,
    show_default=True,
    help="Run the detector every n processed frames and track landmarks in between (1 = "
    "detect on every frame).",
)
@click.option(
    "--min-size",
    type=int,
    default=0,
    show_default=True,
    help="Ignore faces smaller than this (box side, pixels); 0 = detector minimum (~80 px).",
)
@click.option(
    "--max-faces",
    type=int,
    default=0,
    show_default=True,
    help="Keep at most this many faces per frame, largest first (0 = all).",
)
@rotate_option
@normalise_option
@refeed_option
@click.option(
    "--frame-ranges",
    default="",
    help="Extract only these frames, e.g. 1200-1450,3000- (inclusive, counted from 0): a scene "
    "of a long film (convert it with the same --frame-ranges). Default: every frame.",
)
@click.option(
    "--ref",
    "refs",
    type=click.Path(path_type=Path),
    multiple=True,
    metavar="IMAGE",
    help="Photo of the person to keep (repeat for several photos); other faces are skipped.",
)
@click.option(
    "--not-ref",
    "not_refs",
    type=click.Path(path_type=Path),
    multiple=True,
    metavar="IMAGE",
    help="Photo of a person to leave out (repeatable); with --ref, faces nearer this person "
    "than the --ref one are left out.",
)
@click.option(
    "--ref-threshold",
    type=float,
    default=0.6,
    show_default=True,
    help="Identity distance up to which a face counts as the --ref person (lower = stricter).",
)
@click.option(
    "--smooth",
    type=click.Choice(["one-euro", "ema", "none"]),
    default="one-euro",
    show_default=True,
    help="Temporal landmark smoothing for videos (steadier crops).",
)
@click.option(
    "--descriptors/--no-descriptors",
    default=False,
    show_default=True,
    help="Store each face's 128-D identity descriptor in the alignments file.",
)
@click.option(
    "--resume/--no-resume",
    default=True,
    show_default=True,
    help="Skip frames an earlier run finished; --no-resume starts over (old crops removed).",
)
@click.option(
    "--redo-empty",
    is_flag=True,
    help="Detect again only in the frames the extract already in -o found no face in, with "
    "this run's --detector, --rotate, --min-size... (e.g. dlib-cnn for hard frames); every "
    "face found before is kept.",
)
@click.option(
    "--from-faces",
    type=click.Path(path_type=Path),
    default=None,
    help="An earlier extract's faces folder of INPUT: cut its faces again with this --size, "
    "--centering and --coverage from their landmarks, without detecting (deleted crops stay "
    "deleted; names, sort order and painted masks are kept).",
)
@click.option(
    "--debug-frames",
    type=click.Path(path_type=Path),
    default=None,
    help="Also write every processed frame with its faces' boxes, landmarks and crop outlines "
    "drawn, as JPEGs in this folder, to review the alignment (DeepFaceLab's aligned_debug).",
)
@click.option(
    "--sequence",
    is_flag=True,
    help="INPUT, a folder of images, holds the frames of one shot (an EXR or PNG plate "
    "sequence): track and smooth its faces as a video's, rather than each image on its own.",
)
@click.option(
    "--workers",
    type=click.IntRange(0),
    default=0,
    show_default=True,
    help="Processes to find faces on (0: one per core, at most 8; 1: this one): a folder's "
    "images, or a video's stretches of 480 frames, are shared out; the faces are the same.",
)
@click.option("--progress/--no-progress", default=True, help="Show a progress bar.")
def extract(input_path: Path, **options: object) -> None:
    """Find faces in INPUT (a video, a folder of images or a folder of videos), fit 68
    landmarks, and write aligned crops plus alignments.json to --output.

    The dlib models (dlib-hog, dlib-cnn) carry non-commercial licence terms (iBUG 300-W).
    """
    from faceswap.extract import ExtractConfig, run_extract

    refs = tuple(options.pop("refs"))  # type: ignore[arg-type]
    cfg = ExtractConfig(input=input_path, refs=refs, **options)  # type: ignore[arg-type]
    result = run_extract(cfg)
    click.echo(f"detector: {result.detector_reason}")
    for src in result.sources:
        if src.alignments is None:
            click.echo(f"{src.source}: no face found; nothing written", err=True)
        elif src.empty_frames:
            click.echo(src.no_face_line())
    click.echo(result.summary())
    if result.failed:
        names = ", ".join(video.name for video, _ in result.failed)
        raise FaceswapError(
            f"{len(result.failed)} of {len(result.failed) + len(result.sources)} videos were "
            f"not extracted ({names}); see the errors above, fix them and rerun"
        )

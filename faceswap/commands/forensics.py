"""`faceswap train-detector` and `faceswap detect-fakes`: a learned detector of swapped faces."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import click

from faceswap.commands.options import rotate_option

if TYPE_CHECKING:
    from faceswap.forensics import DetectFakesResult


@click.command("train-detector")
@click.option(
    "--real",
    multiple=True,
    required=True,
    type=click.Path(path_type=Path),
    help="Faces of real footage: a `faceswap extract` folder (repeatable).",
)
@click.option(
    "--fake",
    multiple=True,
    required=True,
    type=click.Path(path_type=Path),
    help="Faces extracted from swapped videos (`faceswap extract swap.mp4 -o F`; repeatable).",
)
@click.option(
    "-m",
    "--model-dir",
    required=True,
    type=click.Path(path_type=Path),
    help="Folder to write the detector to.",
)
@click.option("--resolution", default=64, show_default=True, help="Network input side (px).")
@click.option("--iterations", default=2000, show_default=True, help="Training steps.")
@click.option("--batch-size", default=32, show_default=True, help="Faces of each kind a step.")
@click.option("--lr", default=1e-3, show_default=True, help="Learning rate (Adam).")
@click.option(
    "--validation",
    default=0.1,
    show_default=True,
    help="Share of each set held out to measure the detector.",
)
@click.option(
    "--validate-real",
    multiple=True,
    type=click.Path(path_type=Path),
    help="Real faces of other videos to measure it on instead (with --validate-fake).",
)
@click.option(
    "--validate-fake",
    multiple=True,
    type=click.Path(path_type=Path),
    help="Swapped faces of other videos to measure it on (with --validate-real).",
)
@click.option(
    "--jpeg",
    default=0.5,
    show_default=True,
    help="Share of training faces re-compressed as JPEG, so compression is not the cue.",
)
@click.option("--seed", default=0, show_default=True)
@click.option("--device", default="auto", show_default=True)
def train_detector(**options: object) -> None:
    """Train a detector that tells swapped faces from real ones.

    Give it faces of real footage and faces extracted from swaps (ideally of the same
    people and shots). It prints its accuracy and ROC AUC on held-out faces.
    """
    from faceswap.forensics import DetectorTrainConfig, run_train_detector
    from faceswap.text import duration

    result = run_train_detector(DetectorTrainConfig(**options))  # type: ignore[arg-type]
    real, fake = result.validation_faces
    click.echo(
        f"trained {result.iterations} steps on {result.train_faces[0]} real and "
        f"{result.train_faces[1]} fake faces in {duration(result.seconds)}; held-out "
        f"{real} real and {fake} fake: accuracy {result.accuracy:.1%}, ROC AUC {result.auc:.3f}"
    )
    click.echo(f"detector: {result.model_dir}")


@click.command("detect-fakes")
@click.argument("input_path", metavar="INPUT", type=click.Path(path_type=Path))
@click.option(
    "-m",
    "--model-dir",
    required=True,
    type=click.Path(path_type=Path),
    help="A `faceswap train-detector` folder.",
)
@click.option("--frames", default=120, show_default=True, help="Frames to look at (0: all).")
@click.option(
    "--threshold",
    default=0.5,
    show_default=True,
    help="Chance from which a face counts as swapped.",
)
@click.option("--detector", default="dlib-hog", show_default=True, help="Face detector.")
@click.option("--device", default="auto", show_default=True)
@rotate_option
@click.option("--json", "as_json", is_flag=True, help="Print the findings as one JSON object.")
def detect_fakes(input_path: Path, as_json: bool, **options: object) -> None:
    """Score each face of INPUT (a video, an image, an image folder, or a folder of videos:
    one line each) with a trained detector.

    Exits 0 when the faces' median chance of being swapped reaches --threshold in any input,
    1 when in none, 2 when an input could not be read (the others are still scored).
    """
    from faceswap.commands.options import check_each_input
    from faceswap.forensics import DetectFakesConfig, run_detect_fakes

    check_each_input(
        input_path,
        lambda path: run_detect_fakes(DetectFakesConfig(input=path, **options)),  # type: ignore[arg-type]
        lambda result: result.swapped,
        lambda result: _report(result, as_json),
    )


def _report(result: DetectFakesResult, as_json: bool) -> None:
    if as_json:
        click.echo(
            json.dumps(
                {
                    "input": str(result.input),
                    "swapped": result.swapped,
                    "frames": result.frames,
                    "faces": len(result.scores),
                    "median": result.median,
                    "flagged": result.flagged,
                    "scores": list(result.scores),
                }
            )
        )
    elif result.median is None:
        click.echo(f"{result.input}: no face found in {result.frames} frames")
    else:
        verdict = "likely swapped" if result.swapped else "no swap detected"
        click.echo(
            f"{result.input}: {verdict}: median chance {result.median:.2f} over "
            f"{len(result.scores)} faces in {result.frames} frames "
            f"({result.flagged} at {result.threshold:g} or more)"
        )

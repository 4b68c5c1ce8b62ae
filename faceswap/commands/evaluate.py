"""`faceswap evaluate`: identity, expression, stability, sharpness and background of a swap."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import click

from faceswap.commands.options import rotate_option


@click.command()
@click.argument("swapped", type=click.Path(path_type=Path))
@click.option(
    "--source",
    required=True,
    type=click.Path(path_type=Path),
    help="The video (or image folder) SWAPPED was converted from.",
)
@click.option(
    "--ref-b",
    "refs_b",
    multiple=True,
    type=click.Path(path_type=Path),
    help="A photo of B, for how close the swap comes to B (repeatable).",
)
@click.option(
    "--frames",
    type=int,
    default=60,
    show_default=True,
    help="Measure at most this many frames, in pairs of neighbours (0: all).",
)
@click.option("--detector", default="dlib-hog", show_default=True, help="Face detector.")
@click.option("--device", default="auto", help="Torch device for torch detectors.")
@rotate_option
@click.option("--json", "as_json", is_flag=True, help="Print the measures as one JSON object.")
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    default=None,
    help="Also write the measures (and each frame's face counts) to this JSON file.",
)
def evaluate(swapped: Path, output: Path | None, as_json: bool, **options: object) -> None:
    """Measure the swap SWAPPED against its --source, frame by frame.

    Faces kept (still found after the swap), identity (descriptor distance to the face it
    replaced, and with --ref-b to B), expression (landmark error), stability (jitter beyond
    the source's motion), flicker (brightness changes beyond the source's), sharpness
    (detail against the source's) and background (PSNR outside the faces).
    """
    from faceswap.evaluate import EvaluateConfig, run_evaluate
    from faceswap.io.files import write_text_atomic

    result = run_evaluate(EvaluateConfig(swapped=swapped, **options))  # type: ignore[arg-type]
    data = {
        k: (str(v) if isinstance(v, Path) else v)
        for k, v in dataclasses.asdict(result).items()
        if k != "per_frame"
    }
    data["faces_kept_share"] = result.faces_kept_share
    if data["background_psnr"] == math.inf:
        data["background_psnr"] = "inf"
    if output is not None:
        report = {**data, "per_frame": list(result.per_frame)}
        write_text_atomic(output, json.dumps(report, indent=2) + "\n")
    if as_json:
        click.echo(json.dumps(data))
        return
    for line in summary_lines(result):
        click.echo(line)


def summary_lines(result: object) -> list[str]:
    """The report as people read it: one measure a line, with what it means."""
    from faceswap.evaluate import SAME_PERSON, EvaluateResult

    assert isinstance(result, EvaluateResult)

    def pct(value: float | None) -> str:
        return "n/a" if value is None else f"{100 * value:.1f} %"

    kept = result.faces_kept_share
    lines = [
        f"{result.swapped} against {result.source}: {result.frames} frames measured, "
        f"{result.source_faces} source faces",
        f"  faces kept:  {result.faces_kept} of {result.source_faces} ({pct(kept)}) still "
        "found as faces after the swap",
    ]
    if result.distance_to_a is not None:
        verdict = "no longer A" if result.distance_to_a >= SAME_PERSON else "still looks like A"
        ident = f"  identity:    {result.distance_to_a:.3f} from the face it replaced ({verdict})"
        if result.distance_to_b is not None and result.closer_to_b is not None:
            ident += (
                f", {result.distance_to_b:.3f} from B's photos; nearer B in "
                f"{pct(result.closer_to_b)} of faces"
            )
        lines.append(ident)
    lines += [
        f"  expression:  landmarks {pct(result.landmark_error)} of the eye distance from the "
        "source's (median)",
        f"  stability:   {pct(result.jitter)} of the eye distance of jitter a frame beyond the "
        "source's motion",
        "  flicker:     "
        + ("n/a" if result.flicker is None else f"{result.flicker:.2f}")
        + " code values of 255 of face brightness change a frame beyond the source's",
        "  sharpness:   "
        + ("n/a" if result.sharpness is None else f"{result.sharpness:.2f}")
        + " of the source face's detail (variance of the Laplacian)",
        "  background:  "
        + (
            "n/a"
            if result.background_psnr is None
            else (
                "identical"
                if result.background_psnr == math.inf
                else f"PSNR {result.background_psnr:.1f} dB"
            )
        )
        + " outside the faces",
    ]
    return lines

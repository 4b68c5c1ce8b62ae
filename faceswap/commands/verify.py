"""`faceswap verify`: does a video, image or image folder carry faceswap's marks?"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from faceswap.commands.options import rotate_option

if TYPE_CHECKING:
    from faceswap.verify import VerifyResult


@click.command()
@click.argument("input_path", metavar="INPUT", type=click.Path(path_type=Path))
@click.option(
    "--frames",
    type=int,
    default=120,
    show_default=True,
    help="Read at most this many frames for the watermark, spread over the input (0: all).",
)
@click.option(
    "--detector",
    default="dlib-hog",
    show_default=True,
    help="Face detector that places the faces (auto, dlib-hog, dlib-cnn, fan).",
)
@click.option("--device", default="auto", help="Torch device for torch detectors.")
@rotate_option
@click.option("--json", "as_json", is_flag=True, help="Print the findings as one JSON object.")
def verify(
    input_path: Path, frames: int, detector: str, device: str, rotate: str | None, as_json: bool
) -> None:
    """Tell whether INPUT (a video, an image, an image folder, or a folder of videos) is a
    faceswap output.

    Reads the three marks `faceswap convert` leaves: the provenance tags in the file, the
    manifest beside it (INPUT.json) and the invisible watermark in the swapped faces' pixels,
    which survives a lossy re-encode, a resize and lost metadata. A folder of videos gets a
    report per video. Exits 0 when any input carries a mark, 1 when none does, 2 when an
    input could not be read (the others are still reported).
    """
    from faceswap.commands.options import check_each_input
    from faceswap.verify import VerifyConfig, run_verify

    check_each_input(
        input_path,
        lambda path: run_verify(
            VerifyConfig(input=path, frames=frames, detector=detector, device=device, rotate=rotate)
        ),
        lambda result: result.marked,
        lambda result: _report(result, as_json),
    )


def _report(result: VerifyResult, as_json: bool) -> None:
    mark = result.watermark
    if as_json:
        click.echo(
            json.dumps(
                {
                    "input": str(result.path),
                    "marked": result.marked,
                    "tags": result.tags,
                    "manifest": result.manifest is not None,
                    "watermark": {
                        "found": mark.found,
                        "z": mark.z,
                        "frames": mark.frames,
                        "frames_inside_faces": mark.faces,
                        "frames_marked": mark.marked_frames,
                        "mirrored": mark.mirrored,
                        "reframed_shift": mark.shift,
                        "searched": mark.searched or None,
                        "picture": list(mark.picture) if mark.picture else None,
                    },
                }
            )
        )
        return
    click.echo(f"{result.path}: {_verdict(result)}")
    click.echo(f"  tags: {_tags_line(result.tags)}")
    click.echo(f"  manifest: {_manifest_line(result.manifest)}")
    where = f"{mark.faces} inside faces" if mark.faces else "no face found: windows searched"
    flipped = " (mirrored left to right)" if mark.found and mark.mirrored else ""
    if mark.found and mark.picture is not None:
        top, bottom, left, right = mark.picture
        flipped += f" (in black bars: a {right - left}x{bottom - top} picture inside the frame)"
    if mark.found and mark.shift is not None:
        side = "right" if mark.shift > 0 else "left"
        flipped += (
            f" (cropped off-centre: this frame's centre {abs(mark.shift):.2f} heights {side} of "
            "the marked frame's)"
        )
    if mark.found and mark.searched == "moving":
        flipped += " (cropped by a window that moves across the marked frame)"
    click.echo(
        f"  watermark: {'found' if mark.found else 'not found'}{flipped}, z {mark.z:.1f} over "
        f"{mark.frames} frames ({where}; {mark.marked_frames} frames with z >= 3)"
    )


def _verdict(result: VerifyResult) -> str:
    if not result.marked:
        return "no faceswap mark found"
    found = [
        name
        for name, present in (
            ("tags", bool(result.tags)),
            ("manifest", result.manifest is not None),
            ("watermark", result.watermark.found),
        )
        if present
    ]
    return "synthetic: made with faceswap (" + ", ".join(found) + ")"


def _tags_line(tags: dict[str, str]) -> str:
    if not tags:
        return "none"
    return ", ".join(f"{k}={v}" for k, v in tags.items() if k != "comment")


def _manifest_line(manifest: dict[str, Any] | None) -> str:
    if manifest is None:
        return "none"
    model = manifest.get("model") or {}
    frames = manifest.get("frames") or {}
    return (
        f"{manifest.get('tool', '?')} {manifest.get('version', '?')}, preset "
        f"{model.get('preset') or '?'}, {frames.get('swapped', '?')} of "
        f"{frames.get('total', '?')} frames swapped, made {manifest.get('created', '?')}"
    )

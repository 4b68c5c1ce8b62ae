"""`faceswap masks`: write the faces' hull masks to paint over (your own training masks)."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("masks")
@click.argument("faces", metavar="FACES", type=click.Path(path_type=Path))
@click.option(
    "--model",
    "model_dir",
    type=click.Path(path_type=Path),
    default=None,
    help="A mask model (`faceswap train-masks -m`): write the masks it draws, not the hulls.",
)
@click.option("--device", default="auto", help="Torch device for --model: auto, cpu, cuda...")
@click.option("--overwrite", is_flag=True, help="Also replace masks that are there already.")
@click.option(
    "--sheet",
    type=click.Path(path_type=Path),
    default=None,
    help="Also write a PNG of 48 crops with their masks (not-face tinted red, painted ones "
    "framed green), to check them before training.",
)
def masks(
    faces: Path, model_dir: Path | None, device: str, overwrite: bool, sheet: Path | None
) -> None:
    """Write a mask for each face crop to FACES/masks/<crop name>.png.

    FACES is a `faceswap extract` output folder. Without --model each mask is the crop's
    landmark hull: paint black what is not face (a hand, hair, glasses) on the faces that
    something covers, then train on them (`faceswap train` uses a face's mask instead of
    its hull) or train a mask model on them (`faceswap train-masks`) and write its masks
    for all the other faces with --model. Masks already there are kept; with --model only
    the painted ones (the hulls this command wrote are replaced).
    """
    from faceswap.train.dataset import MASKS_DIR, write_masks

    written, kept = write_masks(faces, model_dir=model_dir, device=device, overwrite=overwrite)
    what = f"masks drawn by {model_dir.name}" if model_dir is not None else "hull masks"
    click.echo(
        f"wrote {written} {what} to {MASKS_DIR}/ in {faces}"
        + (
            f", kept {kept} {'painted' if model_dir is not None else 'already there'}"
            if kept
            else ""
        )
        + ("" if model_dir is not None else "; paint black what is not face, then train")
    )
    if sheet is not None:
        from faceswap.train.dataset import mask_sheet

        shown = mask_sheet(faces, sheet)
        click.echo(f"wrote {sheet}: {shown} crops with their masks")

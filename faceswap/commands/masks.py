"""`faceswap masks`: write the faces' hull masks to paint over (your own training masks)."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("masks")
@click.argument("faces", metavar="FACES", type=click.Path(path_type=Path))
@click.option("--overwrite", is_flag=True, help="Also replace masks that are there already.")
def masks(faces: Path, overwrite: bool) -> None:
    """Write each face crop's landmark-hull mask to FACES/masks/<crop name>.png.

    FACES is a `faceswap extract` output folder. Paint over the masks of faces that
    something covers (a hand, hair, glasses: black where it is not face) and train: each
    face then trains on its mask instead of the hull, and `convert --mask learned-dst`
    leaves what covers the face in place. Masks already there are kept.
    """
    from faceswap.train.dataset import MASKS_DIR, write_hull_masks

    written, kept = write_hull_masks(faces, overwrite=overwrite)
    click.echo(
        f"wrote {written} masks to {MASKS_DIR}/ in {faces}"
        + (f", kept {kept} already there" if kept else "")
        + "; paint black what is not face, then train"
    )

"""`faceswap train-masks`: train a mask model (XSeg-like U-Net) on painted face masks."""

from __future__ import annotations

from pathlib import Path

import click

from faceswap.device import DEVICE_CHOICES


@click.command("train-masks")
@click.argument("faces", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "-m",
    "--model-dir",
    required=True,
    type=click.Path(path_type=Path),
    help="Folder for the mask model (its own: not a face-swap model's).",
)
@click.option("--iterations", default=3000, show_default=True, help="Total iterations.")
@click.option("--batch-size", default=8, show_default=True, help="Crops per step.")
@click.option("--lr", default=1e-3, show_default=True, help="Adam learning rate.")
@click.option(
    "--resolution",
    default=128,
    show_default=True,
    help="Side the crops are resized to (a multiple of 8).",
)
@click.option("--seed", default=0, help="Seed for weights, sampling and augmentation.")
@click.option("--device", default="auto", type=click.Choice(DEVICE_CHOICES), help="Device.")
@click.option("--workers", default=0, help="DataLoader worker processes (0: main process).")
@click.option("--save-every", default=500, show_default=True, help="Save interval.")
@click.option("--resume", is_flag=True, help="Continue the mask model in -m.")
@click.option("--progress/--no-progress", default=True, help="Show a progress bar.")
def train_masks(faces: tuple[Path, ...], resolution: int, **options: object) -> None:
    """Train a mask model on the painted masks of the FACES folders.

    It learns from the crops whose mask in FACES/masks/ was painted (by hand or elsewhere),
    and from the hull masks `faceswap masks FACES` wrote and nobody changed, taken as faces
    with nothing in front (half of each batch is painted). Then `faceswap masks FACES
    --model DIR` replaces the unpainted masks with the ones it draws, and `faceswap convert
    --mask segment --mask-model DIR` masks the destination faces with it, so hands, hair or
    glasses over a face stay in front.
    """
    from faceswap.nets.segmenter import SegmenterConfig
    from faceswap.train.segment import SegmenterTrainConfig, run_train_segmenter

    cfg = SegmenterTrainConfig(
        faces=faces,
        network=SegmenterConfig(resolution=resolution),
        **options,  # type: ignore[arg-type]
    )
    result = run_train_segmenter(cfg)
    state = "stopped" if result.interrupted else "finished"
    click.echo(
        f"{state} at iteration {result.iteration} on {result.faces} painted faces and "
        f"{result.hulls} hull masks, loss {result.loss:.4f}, in {result.seconds:.0f} s; mask "
        f"model in {result.model_dir}"
    )

"""`faceswap tune`: one frame converted with each value of a blend setting, side by side."""

from __future__ import annotations

from pathlib import Path

import click

from faceswap.commands.options import (
    alignments_option,
    erode_side_options,
    grade_options,
    mask_model_option,
    model_dir_option,
)
from faceswap.convert.pipeline import DIRECTIONS
from faceswap.convert.tune import TUNE_KEYS
from faceswap.device import DEVICE_CHOICES


@click.command("tune")
@click.argument("input", type=click.Path(path_type=Path))
@model_dir_option
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(path_type=Path),
    help="The contact sheet to write (.png).",
)
@click.option("--frame", required=True, type=int, help="Frame to convert (counted from 0).")
@click.option(
    "--vary",
    default="colour",
    show_default=True,
    type=click.Choice(TUNE_KEYS),
    help="The setting that changes from tile to tile.",
)
@click.option(
    "--values",
    default="",
    help="Its values, comma-separated (default: every colour "
    "or mask mode; numbers for the others: --vary erode --values 0,4,8).",
)
@alignments_option
@click.option("--direction", default="a2b", type=click.Choice(DIRECTIONS))
@click.option("--morph", default=1.0, help="As convert --morph (liae presets).")
@click.option("--mask", default="hull", help="Mask mode of the tiles (unless --vary mask).")
@mask_model_option
@click.option(
    "--colour",
    "--color",
    "colour",
    default="rct",
    help="Colour mode of the tiles (unless --vary colour).",
)
@click.option("--erode", default=0.0, help="As convert --erode.")
@erode_side_options
@click.option("--blur", default=6.0, help="As convert --blur.")
@click.option("--sharpen", default=0.0, help="As convert --sharpen.")
@click.option("--grain", default=0.0, help="As convert --grain.")
@grade_options
@click.option("--device", default="auto", type=click.Choice(DEVICE_CHOICES), help="Device.")
def tune(input: Path, output: Path, frame: int, vary: str, values: str, **options: object) -> None:
    """Write a contact sheet: frame FRAME of INPUT as it is, then converted once per value of
    the --vary setting, labelled, to choose the blend for a shot (then use it in convert,
    or per shot with --blend-ranges). The sheet carries the provenance tags."""
    from faceswap.convert.pipeline import ConvertConfig
    from faceswap.convert.tune import TuneConfig, run_tune

    parsed: tuple[object, ...] = tuple(v.strip() for v in values.split(",") if v.strip())
    if parsed and vary not in ("colour", "mask"):
        try:
            parsed = tuple(float(v) for v in parsed)  # type: ignore[arg-type]
        except ValueError:
            raise click.BadParameter(f"--vary {vary} takes numbers, got {values!r}") from None
    convert = ConvertConfig(input=input, output=output, **options)  # type: ignore[arg-type]
    result = run_tune(
        TuneConfig(convert=convert, frame=frame, vary=vary, output=output, values=parsed)
    )
    shown = ", ".join(str(v) for v in result.values)
    click.echo(f"wrote {result.output}: frame {frame}, then {vary} {shown}")

"""The ``faceswap`` command: a click group with one subcommand per stage.

Commands only parse options, build a frozen config and call the stage's ``run`` function.
Subcommands are imported lazily so ``faceswap --help`` stays fast (no torch import).
"""

from __future__ import annotations

import importlib
import logging
import sys
from typing import IO, Any

import click

from faceswap import __version__
from faceswap.errors import FaceswapError

# name -> ("module:attribute" of the click command, one-line help for `faceswap --help`)
COMMANDS: dict[str, tuple[str, str]] = {
    "doctor": ("faceswap.commands.doctor:doctor", "Report torch, device, ffmpeg and detectors."),
    "extract-frames": (
        "faceswap.commands.frames:extract_frames",
        "Dump the frames of a video to PNG files.",
    ),
    "extract": ("faceswap.commands.extract:extract", "Detect, landmark, align and crop faces."),
    "sort": (
        "faceswap.commands.sort:sort",
        "Order a faces folder for review (blur, identity, pose...), or keep its best faces.",
    ),
    "masks": ("faceswap.commands.masks:masks", "Write face masks to paint over, or a model's."),
    "train-masks": (
        "faceswap.commands.train_masks:train_masks",
        "Train a mask model on painted face masks.",
    ),
    "presets": (
        "faceswap.commands.presets:presets",
        "What each model preset builds: weights, GFLOP, memory.",
    ),
    "train": ("faceswap.commands.train:train", "Train the shared encoder and decoders A, B."),
    "convert": ("faceswap.commands.convert:convert", "Swap faces in a video and re-encode it."),
    "tune": (
        "faceswap.commands.tune:tune",
        "A contact sheet of one frame under each value of a blend setting.",
    ),
    "encode-frames": (
        "faceswap.commands.encode:encode_frames",
        "Encode a folder of frames into a video, with a source's audio.",
    ),
    "evaluate": (
        "faceswap.commands.evaluate:evaluate",
        "Measure a swap against its source: identity, expression, jitter, flicker, sharpness.",
    ),
    "train-detector": (
        "faceswap.commands.forensics:train_detector",
        "Train a detector of swapped faces on real and swapped faces.",
    ),
    "detect-fakes": (
        "faceswap.commands.forensics:detect_fakes",
        "Score the faces of a video with a trained detector of swapped faces.",
    ),
    "run": (
        "faceswap.commands.run:run",
        "Run a pipeline spec (YAML), skipping stages with nothing new to do.",
    ),
    "verify": (
        "faceswap.commands.verify:verify",
        "Tell whether a video or image carries faceswap's marks (tags, watermark).",
    ),
}


class UserError(click.ClickException):
    """A :class:`FaceswapError` as click reports it: one line on stderr, exit code 2."""

    exit_code = 2

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"faceswap: error: {self.format_message()}", err=True, file=file)


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = COMMANDS.get(cmd_name)
        if entry is None:
            return None
        module_name, attr = entry[0].split(":")
        return getattr(importlib.import_module(module_name), attr)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Listing from the table keeps `faceswap --help` free of torch and cv2 imports.
        with formatter.section("Commands"):
            formatter.write_dl([(name, short) for name, (_, short) in COMMANDS.items()])

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except FaceswapError as exc:
            raise UserError(str(exc)) from None
        except KeyboardInterrupt:
            click.echo("faceswap: interrupted", err=True)
            ctx.exit(130)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-V", "--version", prog_name="faceswap")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
def cli(verbose: int) -> None:
    """Face-swap autoencoder pipeline.

    Stages: extract-frames (optional) -> extract -> train -> convert -> encode-frames (for
    image sequences). Run `faceswap COMMAND --help` for each stage's options. Outputs are
    marked as synthetic (metadata, a manifest and an invisible watermark, which `faceswap
    verify` reads); see the README's ethics section.
    """
    level = logging.WARNING - 10 * verbose
    logging.basicConfig(
        level=max(level, logging.DEBUG), format="%(levelname)s %(name)s: %(message)s"
    )


def main() -> None:
    cli(prog_name="faceswap")


if __name__ == "__main__":
    sys.exit(main())

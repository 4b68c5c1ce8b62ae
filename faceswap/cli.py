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

# name -> "module:attribute" of the click command
COMMANDS: dict[str, str] = {
    "doctor": "faceswap.commands.doctor:doctor",
    "extract-frames": "faceswap.commands.frames:extract_frames",
    "extract": "faceswap.commands.extract:extract",
    "train": "faceswap.commands.train:train",
    "convert": "faceswap.commands.convert:convert",
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
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        return getattr(importlib.import_module(module_name), attr)

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

    Stages: extract-frames (optional) -> extract -> train -> convert. Run
    `faceswap COMMAND --help` for each stage's options. Outputs are marked as synthetic
    (metadata and manifest); see the README's ethics section.
    """
    level = logging.WARNING - 10 * verbose
    logging.basicConfig(level=max(level, logging.DEBUG), format="%(levelname)s %(name)s: %(message)s")


def main() -> None:
    cli(prog_name="faceswap")


if __name__ == "__main__":
    sys.exit(main())

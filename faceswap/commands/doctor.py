"""`faceswap doctor`: what this machine can run."""

from __future__ import annotations

import click

from faceswap.doctor import collect_report


@click.command()
def doctor() -> None:
    """Print torch version and device, the ffmpeg in use, and usable detector backends."""
    for line in collect_report():
        click.echo(line)

"""`faceswap presets`: what each model preset (or your own YAML) builds."""

from __future__ import annotations

import click


@click.command("presets")
@click.argument("names", nargs=-1)
@click.option(
    "--batch-size",
    "batch_sizes",
    type=click.IntRange(min=1),
    multiple=True,
    help="Estimate training memory at this --batch-size (repeat for several; default 16, 64).",
)
def presets(names: tuple[str, ...], batch_sizes: tuple[int, ...]) -> None:
    """List the model presets: resolution, layout, weights, GFLOP a face, training memory.

    Give preset NAMES (or paths to your own YAML) for each one's parts as well."""
    from faceswap.nets import PRESETS, load_preset
    from faceswap.nets.model import summarize_model

    chosen = names or tuple(PRESETS.names())
    summaries = [summarize_model(load_preset(name)) for name in chosen]
    batches = batch_sizes or (16, 64)
    click.echo(
        f"{'preset':<14}{'px':>5}  {'arch':<5}{'weights':>10}{'GFLOP/face':>12}{'train GB':>10}"
        f"{'act MB/face':>13}" + "".join(f"{f'GB @{b}':>9}" for b in batches)
    )
    for s in summaries:
        click.echo(
            f"{s.name:<14}{s.resolution:>5}  {s.arch:<5}{s.params / 1e6:>9.1f}M"
            f"{s.gflop_per_face:>12.2f}{s.train_bytes / 2**30:>10.2f}"
            f"{s.activation_bytes / 2**20:>13.1f}"
            + "".join(f"{s.training_bytes(b) / 2**30:>9.2f}" for b in batches)
        )
    if names:
        for s in summaries:
            parts = ", ".join(f"{part} {count / 1e6:.2f}M" for part, count in s.parts.items())
            click.echo(f"{s.name}: {parts}")
    click.echo(
        "GFLOP/face: forward, one face of each side; a training step is about 3x that per "
        "face. train GB: weights, gradients and Adam's moments (float32). act MB/face: what "
        "the forward keeps for backward, one face of each side (float32; --amp about half). "
        "GB @N: both at --batch-size N (an estimate; a GPU adds its CUDA context and "
        "workspaces)."
    )

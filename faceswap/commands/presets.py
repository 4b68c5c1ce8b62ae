"""`faceswap presets`: what each model preset (or your own YAML, or a model folder) builds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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

    Give preset NAMES (or paths to your own YAML, or model folders that `faceswap train`
    wrote) for each one's parts as well; a model folder also says how far it was trained."""
    from faceswap.nets import PRESETS
    from faceswap.nets.model import summarize_model

    chosen = names or tuple(PRESETS.names())
    configs = [_config(name) for name in chosen]
    summaries = [summarize_model(cfg) for cfg, _ in configs]
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
        for s, (_, folder) in zip(summaries, configs, strict=True):
            parts = ", ".join(f"{part} {count / 1e6:.2f}M" for part, count in s.parts.items())
            click.echo(f"{s.name}: {parts}")
            if folder is not None:
                click.echo(f"{folder}: {_trained(folder)}")
    click.echo(
        "GFLOP/face: forward, one face of each side; a training step is about 3x that per "
        "face. train GB: weights, gradients and Adam's moments (float32). act MB/face: what "
        "the forward keeps for backward, one face of each side (float32; --amp: about half, "
        "plus a bf16 copy of the weights). "
        "GB @N: both at --batch-size N (an estimate; a GPU adds its CUDA context and "
        "workspaces)."
    )


def _config(name: str) -> tuple[Any, Path | None]:
    """The ModelConfig a preset name, a YAML path or a model folder stands for, and the
    folder (None for a preset)."""
    from faceswap.nets import load_preset
    from faceswap.train.checkpoint import read_model_json

    if Path(name).is_dir():
        return read_model_json(Path(name))[0], Path(name)
    return load_preset(name), None


def _trained(folder: Path) -> str:
    """How far a model folder was trained, from its card: iteration, losses, data, crop."""
    from faceswap.text import duration
    from faceswap.train.checkpoint import read_card

    card = read_card(folder)
    losses = card.get("losses") or {}
    said = [f"iteration {card.get('iteration', '?')}"]
    said += [f"{key} {losses[key]:.4g}" for key in ("loss_a", "loss_b") if key in losses]
    for side in ("a", "b"):
        data = (card.get("data") or {}).get(side) or {}
        if data:
            said.append(f"{side.upper()} {Path(str(data.get('folder', '?'))).name} "
                        f"({data.get('faces', '?')} faces)")  # fmt: skip
    seconds = card.get("train_seconds")
    if isinstance(seconds, (int, float)):
        said.append(f"trained {duration(seconds)}")
    crop = card.get("crop") or {}
    if crop:
        said.append(f"crops {crop.get('size')} px, {crop.get('centering')}, "
                    f"coverage {crop.get('coverage')}")  # fmt: skip
    return "; ".join(said)

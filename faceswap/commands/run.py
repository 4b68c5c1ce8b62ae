"""`faceswap run`: the stages of a pipeline spec, skipping those with nothing new to do."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from faceswap.text import counted, duration


@click.command("run")
@click.argument("spec", type=click.Path(path_type=Path))
@click.option("--only", multiple=True, help="Run only this stage (repeatable).")
@click.option(
    "--force",
    multiple=True,
    help="Run this stage even if nothing changed (repeatable; 'all' for every stage).",
)
@click.option("--dry-run", is_flag=True, help="Say what would run and why; run nothing.")
def run(spec: Path, only: tuple[str, ...], force: tuple[str, ...], dry_run: bool) -> None:
    """Run the stages of the pipeline SPEC (YAML, see pipelines/) in order.

    A stage is skipped when its options and inputs are as they were when it last finished
    and its outputs are still there; what each ran with is kept beside SPEC in
    <name>.state.json. A train stage goes on from its checkpoint.
    """
    from faceswap.pipeline import RunConfig, StageOutcome, run_pipeline

    def report(outcome: StageOutcome) -> None:
        head = f"{outcome.name} ({outcome.command})"
        if outcome.action == "running":
            click.echo(f"{head}: running: {outcome.reason}")
        elif outcome.action == "ran":
            click.echo(f"{head}: done in {duration(outcome.seconds)}")
        elif outcome.action in ("interrupted", "stopped"):
            click.echo(f"{head}: {outcome.action} after {duration(outcome.seconds)}")
        else:
            click.echo(f"{head}: {outcome.action}: {outcome.reason}")

    result = run_pipeline(
        RunConfig(spec=spec, only=only, force=force, dry_run=dry_run), report=report
    )
    skipped = sum(s.action == "skipped" for s in result.stages)
    if (early := result.ended_early) is not None:
        click.echo(
            f"{spec}: {early.name} was {early.action} before it finished; the same command "
            "goes on from there"
        )
        if early.action == "interrupted":
            sys.exit(130)
        return
    if dry_run:
        would = sum(s.action == "would run" for s in result.stages)
        click.echo(f"{spec}: {counted(would, 'stage')} would run, {skipped} unchanged")
    else:
        click.echo(f"{spec}: {counted(len(result.ran), 'stage')} ran, {skipped} unchanged")

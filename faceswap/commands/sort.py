"""`faceswap sort`: order a faces folder for review, or thin it to its best faces."""

from __future__ import annotations

from pathlib import Path

import click


def _methods_help() -> str:
    from faceswap.sort import SORT_METHODS

    listed = "; ".join(f"{name}: {SORT_METHODS.get(name).describe}" for name in SORT_METHODS)
    return f"The order. {listed}; original: back to extract's names."


class _MethodsOption(click.Option):
    """--by, whose help lists the registered methods only when help is shown."""

    def get_help_record(self, ctx: click.Context) -> tuple[str, str] | None:
        self.help = _methods_help()
        return super().get_help_record(ctx)


@click.command("sort")
@click.argument("faces", metavar="FACES", type=click.Path(path_type=Path))
@click.option("--by", cls=_MethodsOption, default="blur", show_default=True)
@click.option(
    "--keep",
    type=int,
    default=None,
    help="Move all but the first N faces of the order to FACES/trash/ (with --by best: N "
    "faces covering every pose).",
)
@click.option("--reverse", is_flag=True, help="The opposite order.")
@click.option(
    "--dry-run", is_flag=True, help="Print the order with each face's score; change nothing."
)
@click.option("--progress/--no-progress", default=True, help="Show a progress bar.")
def sort(
    faces: Path, by: str, keep: int | None, reverse: bool, dry_run: bool, progress: bool
) -> None:
    """Rename the crops of FACES to <rank>_<name> in the order --by, for review.

    FACES is a `faceswap extract` output folder. Its alignments file and masks follow the
    new names, so training and convert keep every face's landmarks; delete the crops you do
    not want from the end of the order (blurred faces, other people, faces cut by the frame
    edge). `--by original` restores extract's names. A sort cut short is finished by the
    next `faceswap sort FACES`.
    """
    from faceswap.sort import TRASH_DIR, SortConfig, run_sort

    cfg = SortConfig(
        faces=faces, by=by, keep=keep, reverse=reverse, dry_run=dry_run, progress=progress
    )
    result = run_sort(cfg)
    if dry_run:
        for rank, (name, score) in enumerate(result.order, 1):
            cut = "  (to trash)" if keep is not None and rank > keep else ""
            click.echo(f"{rank:6d}  {score:12.4f}  {name}{cut}")
    if result.finished_interrupted:
        click.echo(f"finished the interrupted sort of {faces} first")
    done = "would rename" if dry_run else "renamed"
    line = f"{done} {result.renamed} of {len(result.order)} faces in {faces} by {by}"
    if result.trashed:
        line += (
            f"; {'would move' if dry_run else 'moved'} {result.trashed} to {TRASH_DIR}/ "
            "(training leaves them out, convert leaves those faces unswapped)"
        )
    if result.unlisted:
        line += f"; left {len(result.unlisted)} crops not in the alignments file as they were"
    click.echo(line)

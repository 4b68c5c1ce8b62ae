"""Run a pipeline spec: each stage in order, skipping those with nothing new to do.

A stage runs when it never ran, when its options changed, when one of its inputs changed
(a file's size or time, or any file in a folder: hidden names such as the training face
cache aside), when an output is missing, or when asked (``force``). Otherwise it is
skipped. What each stage ran with is kept in ``<spec>.state.json`` beside the spec,
written after each stage that finishes, so a run stopped halfway goes on where it stopped.

An output changed by hand does not rerun the stage that wrote it (deleting bad crops from a
faces folder is part of the work, and extracting again would bring them back); the stages
that read it see the change and run again. A stage that finished before and runs again
starts over (extract gets ``--no-resume``, extract-frames ``--overwrite``) unless the spec
says otherwise, since its old output came from other inputs or options; one that never
finished goes on from what it left, and so does a start over that was cut short (it is
recorded as pending until it finishes), unless its options or inputs changed since. A
train stage whose model folder already holds a checkpoint always goes on from it
(``--resume`` is added), so raising ``iterations`` or changing the schedule trains on.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from faceswap.errors import FaceswapError
from faceswap.io.files import write_text_atomic
from faceswap.pipeline.spec import Spec, Stage, load_spec, stage_command

log = logging.getLogger(__name__)

STATE_VERSION = 1


@dataclass(frozen=True)
class RunConfig:
    """Settings of :func:`run_pipeline`.

    Attributes:
        spec: the pipeline spec (YAML).
        only: run only these stages (by name; the others are neither run nor checked).
        force: run these stages even if unchanged (``("all",)``: every stage).
        dry_run: say what would run and why, run nothing.
    """

    spec: Path
    only: tuple[str, ...] = ()
    force: tuple[str, ...] = ()
    dry_run: bool = False


@dataclass(frozen=True)
class StageOutcome:
    """What happened to one stage: ``ran``, ``skipped``, ``would run`` (dry run), or
    ``interrupted`` / ``stopped`` (ended before its work was done, see :func:`_execute`; the
    run ends there), why, and how long it took."""

    name: str
    command: str
    action: str
    reason: str
    seconds: float = 0.0


@dataclass(frozen=True)
class RunResult:
    spec: Path
    stages: tuple[StageOutcome, ...] = field(default=())

    @property
    def ran(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.stages if s.action == "ran")

    @property
    def ended_early(self) -> StageOutcome | None:
        """The stage that was interrupted or stopped, which ended the run."""
        last = self.stages[-1] if self.stages else None
        return last if last is not None and last.action in ("interrupted", "stopped") else None


def state_path(spec: Path) -> Path:
    """Where a spec's run state lives: ``project.yaml`` -> ``project.state.json``."""
    return spec.with_name(spec.stem + ".state.json")


def _entries(folder: Path) -> list[str]:
    out = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if name.startswith("."):
                continue  # caches, temporaries of atomic writes
            path = Path(root, name)
            try:
                stat = path.stat()
            except OSError:
                continue
            out.append(f"{path.relative_to(folder)}:{stat.st_size}:{stat.st_mtime_ns}")
    return out


def fingerprint(path: Path) -> str:
    """A short hash of a file's size and time, or of every file's in a folder (hidden names
    left out); ``missing`` when there is nothing there."""
    if path.is_file():
        stat = path.stat()
        text = f"file:{stat.st_size}:{stat.st_mtime_ns}"
    elif path.is_dir():
        text = "dir:" + "\n".join(_entries(path))
    else:
        return "missing"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _options_key(stage: Stage) -> str:
    return hashlib.sha256(json.dumps([stage.command, *stage.argv]).encode()).hexdigest()[:16]


def _load_state(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {"version": STATE_VERSION, "stages": {}}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        log.warning("%s: unreadable run state; every stage runs again", path)
        return {"version": STATE_VERSION, "stages": {}}
    if not isinstance(data, dict) or data.get("version") != STATE_VERSION:
        return {"version": STATE_VERSION, "stages": {}}
    data.setdefault("stages", {})
    return data


def _short(path: Path, base: Path) -> str:
    try:
        return str(path.relative_to(base))
    except ValueError:
        return str(path)


def _setup_changed(stage: Stage, recorded: dict[str, Any], base: Path) -> str | None:
    """What changed in the stage's options or inputs since ``recorded``, or None."""
    if recorded.get("options") != _options_key(stage):
        return "its options changed"
    seen = recorded.get("inputs", {})
    for path in stage.inputs:
        if seen.get(str(path)) != fingerprint(path):
            return f"{_short(path, base)} changed"
    return None


def why_run(stage: Stage, recorded: dict[str, Any] | None, base: Path) -> str | None:
    """Why ``stage`` must run given what it last ran with, or None when it may be skipped."""
    if not recorded:
        return "never ran"
    changed = _setup_changed(stage, recorded, base)
    if recorded.get("pending"):
        return changed or "it did not finish"
    if changed:
        return changed
    missing = [p for p in stage.outputs if not p.exists()]
    return f"{_short(missing[0], base)} is missing" if missing else None


def starts_over(stage: Stage, recorded: dict[str, Any] | None, base: Path) -> bool:
    """Whether a run of ``stage`` must start over: it finished before (its output came from
    other options or inputs), or a start over was cut short and something changed since.
    A stage that never finished, or whose cut-short start over is unchanged, goes on."""
    if not recorded:
        return False
    if recorded.get("pending"):
        return _setup_changed(stage, recorded, base) is not None
    return True


def _overlaps(a: Path, b: Path) -> bool:
    """One path is the other or lies inside it."""
    return a == b or a in b.parents or b in a.parents


#: What makes a command start over rather than go on from an earlier run's output: the
#: first flag is added when the stage ran before, unless the spec gives one of them (an
#: extract that redoes the frames without a face builds on its earlier output by design).
START_OVER = {
    "extract": ("--no-resume", "--resume", "--redo-empty"),
    "extract-frames": ("--overwrite",),
}


def _argv(stage: Stage, again: bool) -> list[str]:
    """The stage's command line; ``again``: it finished before, so its output is stale."""
    argv = list(stage.argv)
    flags = START_OVER.get(stage.command, ())
    if again and flags and not set(flags) & set(argv):
        argv.append(flags[0])
    if stage.command == "train" and "--resume" not in argv:
        from faceswap.train.checkpoint import list_checkpoints

        model_dirs = stage.paths.get("model_dir", ())  # none: the command says it is missing
        if len(model_dirs) == 1 and model_dirs[0].is_dir() and list_checkpoints(model_dirs[0]):
            argv.append("--resume")
    return argv


def _execute(stage: Stage, again: bool) -> str | None:
    """Run one stage's command in this process; any failure is one FaceswapError line.

    Returns:
        None when the stage finished; ``interrupted`` (Ctrl-C, SIGTERM) or ``stopped`` (a
        train stage that reached ``--max-minutes``) when it ended before its work was done.
    """
    command = stage_command(stage.command)
    where = f"stage {stage.name} ({stage.command})"
    try:
        value = command.main(
            _argv(stage, again), prog_name=f"faceswap {stage.command}", standalone_mode=False
        )
    except FaceswapError as exc:
        raise FaceswapError(f"{where}: {exc}") from None
    except (KeyboardInterrupt, click.Abort):
        return "interrupted"
    except click.ClickException as exc:
        raise FaceswapError(f"{where}: {exc.format_message()}") from None
    except SystemExit as exc:
        value = exc.code
    if isinstance(value, int) and value not in (0, 130):
        raise FaceswapError(f"{where}: stopped with exit code {value}")
    if getattr(value, "out_of_time", False):
        return "stopped"
    if value == 130 or getattr(value, "interrupted", False):
        return "interrupted"
    return None


def run_pipeline(
    cfg: RunConfig, *, report: Callable[[StageOutcome], None] | None = None
) -> RunResult:
    """Run the stages of ``cfg.spec`` that have something new to do, in order.

    Args:
        cfg: the spec and what to run.
        report: called with each stage's outcome as it is known (before a stage runs with
            ``action="running"``, and after).

    Raises:
        FaceswapError: a bad spec, an unknown stage name, or a stage that failed (its own
            message, with the stage's name); stages before it keep their recorded state.
    """
    spec: Spec = load_spec(cfg.spec)
    for name in (*cfg.only, *(n for n in cfg.force if n != "all")):
        spec.stage(name)  # unknown names fail here, listing the stages
    base = spec.path.resolve().parent
    state_file = state_path(spec.path)
    state = _load_state(state_file)
    outcomes: list[StageOutcome] = []
    emit = report or (lambda outcome: None)
    rewritten: dict[Path, str] = {}  # in a dry run: outputs of the stages that would run
    for stage in spec.stages:
        if cfg.only and stage.name not in cfg.only:
            continue
        forced = "all" in cfg.force or stage.name in cfg.force
        reason = "forced" if forced else why_run(stage, state["stages"].get(stage.name), base)
        if reason is None:
            after = next(
                (by for p in stage.inputs for out, by in rewritten.items() if _overlaps(p, out)),
                None,
            )
            reason = None if after is None else f"{after} runs before it"
        if reason is not None and cfg.dry_run:
            rewritten.update((p, stage.name) for p in stage.outputs)
        if reason is None:
            outcome = StageOutcome(stage.name, stage.command, "skipped", "unchanged")
        elif cfg.dry_run:
            outcome = StageOutcome(stage.name, stage.command, "would run", reason)
        else:
            emit(StageOutcome(stage.name, stage.command, "running", reason))
            again = starts_over(stage, state["stages"].get(stage.name), base)
            if again:  # until it finishes, a stopped run goes on from this start over
                state["stages"][stage.name] = {
                    "command": stage.command,
                    "options": _options_key(stage),
                    "inputs": {str(p): fingerprint(p) for p in stage.inputs},
                    "pending": True,
                }
                write_text_atomic(state_file, json.dumps(state, indent=2, sort_keys=True) + "\n")
            start = time.perf_counter()
            ended = _execute(stage, again=again)
            seconds = time.perf_counter() - start
            if ended is not None:  # not finished: not recorded so, and nothing after it runs
                outcome = StageOutcome(stage.name, stage.command, ended, reason, seconds)
                emit(outcome)
                outcomes.append(outcome)
                break
            state["stages"][stage.name] = {
                "command": stage.command,
                "options": _options_key(stage),
                "argv": list(stage.argv),
                # Read after the run, so what an in-place stage wrote is its own doing.
                "inputs": {str(p): fingerprint(p) for p in stage.inputs},
                "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "seconds": round(seconds, 1),
            }
            write_text_atomic(state_file, json.dumps(state, indent=2, sort_keys=True) + "\n")
            outcome = StageOutcome(stage.name, stage.command, "ran", reason, seconds)
        emit(outcome)
        outcomes.append(outcome)
    return RunResult(spec.path, tuple(outcomes))

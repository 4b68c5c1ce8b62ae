"""Pipeline specs: a YAML file naming stages, each one faceswap command and its options.

::

    vars:
      work: ../workspace
    stages:
      faces_a:
        extract: {input: ../data/a/interview.mp4, output: "${work}/faces_a"}
      faces_b:
        extract: {input: ../data/b/photos, output: "${work}/faces_b"}
      model:
        train: {a: "${work}/faces_a", b: "${work}/faces_b", model-dir: "${work}/model",
                preset: original, iterations: 200000}
      swap:
        convert: {input: ../data/a/interview.mp4, model: "${work}/model",
                  alignments: "${work}/faces_a/alignments.json", output: "${work}/swap.mp4"}

Stages run in the order written. An option is named as on the command line without its
dashes (``model-dir``, ``model_dir`` and ``m`` are one option); the command's argument is
``input`` (or its own name, such as ``faces``); a flag takes ``true`` or ``false`` (``false``
gives its ``--no-`` form); a repeatable option takes a list. Paths (and a preset given as
a YAML file) are relative to the spec's folder. ``${name}`` is replaced by ``vars.name`` in
any string.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from faceswap.config import load_yaml
from faceswap.errors import FaceswapError

#: Commands a stage may run, with the options that name what the stage writes.
STAGE_OUTPUTS: dict[str, tuple[str, ...]] = {
    "extract-frames": ("output",),
    "extract": ("output",),
    "sort": ("faces",),
    "masks": ("faces", "sheet"),
    "train-masks": ("model_dir",),
    "train": ("model_dir",),
    "convert": ("output", "matte"),
    "tune": ("output",),
    "encode-frames": ("output",),
    "evaluate": ("output",),
}
#: Options the runner sets itself.
_RUNNER_OWNS = ("progress", "no_progress")
#: Outputs that are also inputs: the folder a stage writes into beside what it reads there.
IN_PLACE: dict[str, tuple[str, ...]] = {"masks": ("faces",), "sort": ("faces",)}
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True)
class Stage:
    """One stage of a spec.

    Attributes:
        name: the stage's name in the spec.
        command: the faceswap command it runs.
        argv: the command's arguments, as the command line would give them.
        paths: each path-valued parameter's resolved paths (by parameter name).
        outputs: the paths the stage writes.
        in_place: outputs it also reads (``masks`` writes into the faces folder it reads).
    """

    name: str
    command: str
    argv: tuple[str, ...]
    paths: dict[str, tuple[Path, ...]]
    outputs: tuple[Path, ...]
    in_place: tuple[Path, ...] = ()

    @property
    def inputs(self) -> tuple[Path, ...]:
        """Paths the stage reads (every path parameter that is not only an output)."""
        written = set(self.outputs) - set(self.in_place)
        return tuple(p for ps in self.paths.values() for p in ps if p not in written)


@dataclass(frozen=True)
class Spec:
    path: Path
    stages: tuple[Stage, ...]

    def stage(self, name: str) -> Stage:
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise FaceswapError(
            f"{self.path}: no stage {name!r}; stages: {', '.join(s.name for s in self.stages)}"
        )


def _norm(key: str) -> str:
    return key.strip().lstrip("-").replace("-", "_").lower()


def _substitute(value: Any, variables: dict[str, str], where: str) -> Any:
    if isinstance(value, str):

        def lookup(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in variables:
                known = ", ".join(sorted(variables)) or "none"
                raise FaceswapError(f"{where}: unknown variable ${{{name}}}; vars: {known}")
            return variables[name]

        return _VAR.sub(lookup, value)
    if isinstance(value, list):
        return [_substitute(v, variables, where) for v in value]
    return value


def _is_yaml_file(param: click.Parameter, values: list[Any]) -> bool:
    """A preset given as a YAML file (``preset: h128_mask.yaml``): a path like any other."""
    return param.name == "preset" and all(
        isinstance(v, str) and v.lower().endswith((".yaml", ".yml")) for v in values
    )


def stage_command(name: str) -> click.Command:
    """The click command of faceswap command ``name``."""
    from faceswap.cli import cli

    command = cli.get_command(click.Context(cli), name)
    assert command is not None
    return command


def _param_names(param: click.Parameter) -> set[str]:
    names = {_norm(param.name or "")}
    if isinstance(param, click.Option):
        names |= {_norm(opt) for opt in param.opts}
    elif isinstance(param, click.Argument):
        names |= {"input", _norm(param.human_readable_name)}
    return names


def _stage(name: str, body: Any, base: Path, variables: dict[str, str], where: str) -> Stage:
    if not isinstance(body, dict) or len(body) != 1:
        raise FaceswapError(
            f"{where}: a stage is one command and its options, such as "
            f"'{name}: {{extract: {{input: clip.mp4, output: faces}}}}'"
        )
    ((command_name, options),) = body.items()
    if command_name not in STAGE_OUTPUTS:
        raise FaceswapError(
            f"{where}: unknown stage command {command_name!r}; choose from "
            f"{', '.join(STAGE_OUTPUTS)}"
        )
    options = {} if options is None else options
    if not isinstance(options, dict):
        raise FaceswapError(f"{where}: the options of {command_name} must be a mapping")
    command = stage_command(command_name)
    by_name = {n: p for p in command.params for n in _param_names(p) if p.name != "help"}
    argv: list[str] = []
    positional: list[str] = []
    paths: dict[str, tuple[Path, ...]] = {}
    for key, raw in options.items():
        param = by_name.get(_norm(str(key)))
        if param is None or param.name in _RUNNER_OWNS:
            valid = sorted(
                (p.opts[-1].lstrip("-") if isinstance(p, click.Option) else "input")
                for p in command.params
                if p.name not in ("help", *_RUNNER_OWNS)
            )
            raise FaceswapError(
                f"{where}: {command_name} has no option {key!r}; options: {', '.join(valid)}"
            )
        value = _substitute(raw, variables, f"{where}.{key}")
        values = value if isinstance(value, list) else [value]
        if isinstance(param.type, click.Path) or _is_yaml_file(param, values):
            resolved = tuple((base / str(v)).resolve() for v in values)
            paths[param.name or str(key)] = resolved
            values = [str(p) for p in resolved]
        if isinstance(param, click.Argument):
            positional += [str(v) for v in values]
            continue
        assert isinstance(param, click.Option)
        if param.is_flag and not param.count:
            if not isinstance(value, bool):
                raise FaceswapError(f"{where}.{key}: true or false, got {value!r}")
            if value:
                argv.append(max(param.opts, key=len))
            elif param.secondary_opts:
                argv.append(param.secondary_opts[0])
            continue
        if isinstance(value, list) and not param.multiple and param.nargs == 1:
            raise FaceswapError(f"{where}.{key}: one value, got a list")
        for v in values:
            text = str(v).lower() if isinstance(v, bool) else str(v)
            argv += [max(param.opts, key=len), text]
    given = {by_name[_norm(str(key))].name for key in options}
    missing = [
        (p.opts[-1].lstrip("-") if isinstance(p, click.Option) else "input")
        for p in command.params
        if p.required and p.name not in given
    ]
    if missing:
        raise FaceswapError(f"{where}: {command_name} needs {', '.join(missing)}")
    if any(p.name in _RUNNER_OWNS for p in command.params):
        argv.append("--no-progress")  # one line a stage in the runner's log, not a bar
    outputs = tuple(p for key in STAGE_OUTPUTS[command_name] for p in paths.get(key, ()))
    in_place = tuple(p for key in IN_PLACE.get(command_name, ()) for p in paths.get(key, ()))
    return Stage(name, command_name, (*positional, *argv), paths, outputs, in_place)


def load_spec(path: Path | str) -> Spec:
    """Read and check a pipeline spec; every error names the file and the stage.

    Raises:
        FaceswapError: a missing or malformed file, an unknown command or option, a value of
            the wrong kind, an unknown ``${var}``.
    """
    path = Path(path)
    data = load_yaml(path)
    unknown = sorted(set(data) - {"vars", "stages"})
    if unknown:
        raise FaceswapError(
            f"{path}: unknown key(s) {', '.join(unknown)}; valid keys: stages, vars"
        )
    raw_vars = data.get("vars") or {}
    if not isinstance(raw_vars, dict):
        raise FaceswapError(f"{path}: vars must be a mapping of names to values")
    variables: dict[str, str] = {}
    for key, value in raw_vars.items():  # earlier vars may be used in later ones
        variables[str(key)] = str(_substitute(str(value), variables, f"{path}: vars.{key}"))
    stages = data.get("stages")
    if not isinstance(stages, dict) or not stages:
        raise FaceswapError(
            f"{path}: no stages; add 'stages:' with one or more named stages (see pipelines/)"
        )
    base = path.resolve().parent
    built = tuple(
        _stage(str(name), body, base, variables, f"{path}: stages.{name}")
        for name, body in stages.items()
    )
    return Spec(path, built)

"""Typed configs: frozen dataclasses, loaded from YAML/dicts with unknown keys rejected."""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from faceswap.errors import FaceswapError

C = TypeVar("C")


def config_from_dict(cls: type[C], data: dict[str, Any], *, source: str = "config") -> C:
    """Build dataclass ``cls`` from ``data``; unknown keys are an error naming the valid ones.

    Nested dataclass fields are built from nested dicts; lists become tuples where the field
    is a tuple, so configs stay hashable and frozen.
    """
    if not isinstance(data, dict):
        raise FaceswapError(
            f"{source}: expected a mapping of keys to values, got {type(data).__name__}"
        )
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise FaceswapError(
            f"{source}: unknown key(s) {', '.join(unknown)}; "
            f"valid keys: {', '.join(sorted(fields))}"
        )
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, value in data.items():
        kwargs[name] = _coerce(hints.get(name), value, f"{source}.{name}")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise FaceswapError(f"{source}: {exc}") from None


def _coerce(hint: Any, value: Any, where: str) -> Any:
    if hint is None or value is None:
        return value
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return _coerce(args[0], value, where) if len(args) == 1 else value
    if dataclasses.is_dataclass(hint) and isinstance(value, dict):
        return config_from_dict(hint, value, source=where)  # type: ignore[arg-type]
    if origin is tuple and isinstance(value, list | tuple):
        return tuple(value)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """A JSON-friendly dict of a dataclass config (Paths become strings, tuples lists)."""

    def convert(value: Any) -> Any:
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return {f.name: convert(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, Path):
            return str(value)
        if isinstance(value, tuple | list):
            return [convert(v) for v in value]
        if isinstance(value, dict):
            return {str(k): convert(v) for k, v in value.items()}
        return value

    return convert(cfg)


def load_yaml(path: Path) -> dict[str, Any]:
    """Read a YAML mapping; a missing or malformed file is a :class:`FaceswapError`."""
    path = Path(path)
    if not path.is_file():
        raise FaceswapError(f"{path}: no such file")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        first = str(exc).splitlines()[0] if str(exc) else "parse error"
        raise FaceswapError(f"{path}: not valid YAML ({first}); fix the file") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise FaceswapError(f"{path}: expected a mapping at the top level")
    return data


def dump_json(data: Any) -> str:
    return json.dumps(data, indent=2, sort_keys=True) + "\n"


def check_frame_limit(frames: int) -> None:
    """A ``--frames`` limit (read at most this many frames) must be 0 (all) or more."""
    if frames < 0:
        raise FaceswapError(f"--frames must be 0 (every frame) or more, got {frames}")

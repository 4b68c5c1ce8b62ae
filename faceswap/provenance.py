"""Provenance for synthetic outputs: container tags, a sidecar manifest, reading them back.

Every converted video is marked as synthetic three times, on by default:

* container metadata (:func:`provenance_tags`): ``synthetic=1``, ``generator=faceswap X.Y``,
  ``model_sha256=...`` and a human-readable ``comment``, which players and ``ffprobe`` show;
* a JSON manifest next to the output (:func:`write_manifest`), ``<output>.json``: tool,
  version, model hash and preset, the input's name and sha256, the settings used, the time
  and how many frames were swapped;
* an invisible watermark in the pixels of every swapped face (:mod:`faceswap.watermark`),
  applied through the :class:`FrameMarker` hook that :func:`frame_marker` returns: the
  convert pipeline calls it on each output frame, with the frame's blend matte, before
  encoding.

:func:`faceswap.verify.run_verify` reads all three back.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from faceswap import __version__
from faceswap.errors import FaceswapError
from faceswap.io.files import write_text_atomic

MANIFEST_SCHEMA = 1
TOOL = "faceswap"
#: Container tag keys this module writes (and :func:`read_provenance` returns).
TAG_KEYS = ("synthetic", "generator", "model_sha256", "comment")


class FrameMarker(Protocol):
    """A pixel-level provenance mark applied to every output frame before encoding.

    Called with an RGB (H, W, 3) frame (uint8, or uint16 for deep sources), its index and
    its blend matte (uint8 (H, W), 255 where a swapped face covers the frame; None or all 0
    for a frame without a face); returns the marked frame (same shape and dtype). It must
    leave a frame visually unchanged, and a frame without a face exactly as it was.
    """

    name: str

    def __call__(
        self, frame: np.ndarray, index: int, coverage: np.ndarray | None
    ) -> np.ndarray: ...


def frame_marker() -> FrameMarker | None:
    """The pixel marker applied to converted frames: :class:`faceswap.watermark.Watermark`."""
    from faceswap.watermark import Watermark

    return Watermark()


def generator_name() -> str:
    """``faceswap <version>``: the tool that made the output."""
    return f"{TOOL} {__version__}"


def file_sha256(path: Path | str, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes, read in ``chunk``-byte pieces."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            while block := fh.read(chunk):
                digest.update(block)
    except OSError as exc:
        raise FaceswapError(f"{path}: cannot read ({exc.strerror}); check the path") from None
    return digest.hexdigest()


def preview_tags(preset: str | None = None) -> dict[str, str]:
    """The tags of a training preview image (its A->B and B->A columns are swapped faces):
    synthetic, the generator and a comment; no model hash (the weights change every step)."""
    what = f" ({preset})" if preset else ""
    return {
        "synthetic": "1",
        "generator": generator_name(),
        "comment": f"Synthetic media: a training preview of {generator_name()}{what}.",
    }


def provenance_tags(model_sha256: str, *, preset: str | None = None) -> dict[str, str]:
    """Container metadata marking a video as synthetic.

    Args:
        model_sha256: hex digest of the model weights that made the faces.
        preset: name of the model preset, when known.

    Returns:
        ``{"synthetic": "1", "generator": "faceswap X", "model_sha256": ..., "comment": ...}``,
        ready for the writer's ``metadata``.
    """
    what = f"model {model_sha256[:16]}" + (f", preset {preset}" if preset else "")
    return {
        "synthetic": "1",
        "generator": generator_name(),
        "model_sha256": model_sha256,
        "comment": f"Synthetic media: faces swapped by {generator_name()} ({what}).",
    }


def manifest_path(output: Path | str) -> Path:
    """Where the manifest of ``output`` lives: ``<output>.json`` (``out.mp4.json``)."""
    output = Path(output)
    return output.with_name(output.name + ".json")


def write_manifest(
    output: Path | str,
    *,
    model_sha256: str,
    preset: str | None,
    input_path: Path | str,
    settings: Mapping[str, Any],
    frames_total: int,
    frames_swapped: int,
    faces_swapped: int,
    input_sha256: str | None = None,
) -> Path:
    """Write the sidecar manifest of a synthetic output atomically; returns its path.

    Args:
        output: the converted video (or image folder).
        model_sha256: hex digest of the model weights.
        preset: model preset name (None when unknown).
        input_path: the source video or folder; a file's sha256 is computed when
            ``input_sha256`` is not given (folders get none).
        settings: the convert settings (JSON types).
        frames_total: frames written.
        frames_swapped: frames in which at least one face was swapped.
        faces_swapped: faces swapped over all frames.
        input_sha256: precomputed digest of the input file.
    """
    input_path = Path(input_path)
    if input_sha256 is None and input_path.is_file():
        input_sha256 = file_sha256(input_path)
    data = {
        "schema_version": MANIFEST_SCHEMA,
        "synthetic": True,
        "tool": TOOL,
        "version": __version__,
        "generator": generator_name(),
        "output": Path(output).name,
        "model": {"sha256": model_sha256, "preset": preset},
        "input": {"name": input_path.name, "sha256": input_sha256},
        "settings": dict(settings),
        "frames": {"total": int(frames_total), "swapped": int(frames_swapped)},
        "faces_swapped": int(faces_swapped),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    path = manifest_path(output)
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True) + "\n")
    return path


def read_manifest(output: Path | str) -> dict[str, Any] | None:
    """The manifest next to ``output``, or None when there is none."""
    path = manifest_path(output)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise FaceswapError(f"{path}: corrupt provenance manifest (not valid JSON)") from None
    if not isinstance(data, dict):
        raise FaceswapError(f"{path}: not a faceswap provenance manifest")
    return data


def _json_tags(text: str | None) -> dict[str, str]:
    """A JSON object's items as strings; ``{}`` for none, or text that is not one (a
    description or comment some other program wrote)."""
    try:
        found = json.loads(text or "{}")
    except json.JSONDecodeError:
        return {}
    return {str(k): str(v) for k, v in found.items()} if isinstance(found, dict) else {}


def read_provenance(path: Path | str) -> dict[str, str]:
    """The provenance tags stored in a video's container metadata, a PNG frame's text
    chunks, a TIFF frame's ImageDescription, a JPEG's comment or an EXR's header.

    Args:
        path: a video, or a PNG, TIFF or JPEG frame written by ``faceswap convert``.

    Returns:
        The subset of :data:`TAG_KEYS` found (empty for a file without provenance).
    """
    suffix = Path(path).suffix.lower()
    if suffix == ".exr":
        from faceswap.io.exr import exr_text

        try:
            meta = exr_text(path)
        except (OSError, ValueError):
            raise FaceswapError(f"{path}: cannot read it as an image; check the file") from None
    elif suffix in (".png", ".tif", ".tiff", ".jpg", ".jpeg"):
        from faceswap.io.images import jpeg_comments, png_text, tiff_description

        try:
            data = Path(path).read_bytes()
            if suffix == ".png":
                meta = png_text(data)
            elif suffix in (".tif", ".tiff"):
                meta = _json_tags(tiff_description(data))
            else:
                meta = next(
                    (found for text in jpeg_comments(data) if (found := _json_tags(text))), {}
                )
        except (OSError, ValueError):
            raise FaceswapError(f"{path}: cannot read it as an image; check the file") from None
    else:
        from faceswap.io.video import probe  # video I/O pulls ffmpeg helpers: on demand

        meta = {str(k).lower(): str(v) for k, v in probe(path).metadata.items()}
    return {key: meta[key] for key in TAG_KEYS if key in meta}

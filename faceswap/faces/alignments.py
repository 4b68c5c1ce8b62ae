"""The alignments file: per frame, the faces found, their landmarks and crop matrices.

Stored as JSON (never pickle: a stranger's file must not be able to run code) with a
``schema_version``. Layout::

    {"schema_version": 1, "source": "...", "frame_count": 120, "fps": "30000/1001",
     "width": 640, "height": 360, "crop": {"size": 256, "coverage": 0.8, "centering": "face"},
     "detector": "dlib-hog", "extra": {...},
     "frames": [{"index": 0, "timestamp": 0.0, "detected": true,
                 "faces": [{"box": [x0, y0, x1, y1], "score": 1.2, "landmarks": [[x, y], ...],
                            "matrix": [[a, b, tx], [c, d, ty]], "crop_file": "frame_000000_0.png",
                            "descriptor": null, "track_id": 0}]}]}

Landmarks and boxes are frame pixels; ``matrix`` maps frame pixels to crop pixels.

A path ending in ``.npz`` selects the compact form of the same content: the per-face
numbers as numpy arrays (``box``, ``landmarks``, ``matrix``, ``descriptor``) plus the rest
as a JSON ``header``; it is read with ``allow_pickle=False``.
"""

from __future__ import annotations

import json
import math
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from faceswap.config import config_from_dict, config_to_dict
from faceswap.errors import FaceswapError
from faceswap.faces.align import CropSpec
from faceswap.io.files import atomic_path, write_text_atomic

SCHEMA_VERSION = 1
ALIGNMENTS_NAME = "alignments.json"

# version -> function upgrading a raw dict of that version to the next one.
_MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {}


@dataclass(frozen=True, eq=False)
class FaceRecord:
    """One face in one frame.

    Attributes:
        box: (4,) float32 ``x0, y0, x1, y1`` in frame pixels.
        score: detector confidence (backend-specific scale; higher is surer). Tracked faces
            carry the score of the detection they came from.
        landmarks: (68, 2) float32 frame pixels.
        matrix: (2, 3) float64 affine frame -> crop.
        crop_file: file name of the crop beside the alignments file ("" when not written).
        descriptor: (128,) float32 dlib identity descriptor, or None.
        track_id: id that stays with one person across frames (-1 when unknown).
    """

    box: np.ndarray
    score: float
    landmarks: np.ndarray
    matrix: np.ndarray
    crop_file: str = ""
    descriptor: np.ndarray | None = None
    track_id: int = -1


@dataclass(frozen=True, eq=False)
class FrameRecord:
    """The faces of one processed frame.

    Attributes:
        index: frame number in the source (0-based; for image folders the sorted position).
        timestamp: presentation time in seconds (0.0 for still images).
        faces: faces in this frame, largest first.
        detected: True when the detector ran on this frame; False when the faces were
            tracked from earlier frames.
    """

    index: int
    timestamp: float
    faces: tuple[FaceRecord, ...] = ()
    detected: bool = True


@dataclass(eq=False)
class Alignments:
    """Everything extract learned about one source (a video or an image folder).

    Attributes:
        source: path of the video or image folder.
        frame_count: frames in the source (as probed).
        fps: frame rate, or None for image folders.
        width, height: frame size in pixels.
        crop: geometry of the crops (and of every ``matrix``).
        detector: name of the backend that found the faces.
        frames: processed frames in index order (frames skipped by ``every_nth`` are absent).
        extra: free-form settings worth recording (JSON types only).
    """

    source: str
    frame_count: int
    fps: Fraction | None
    width: int
    height: int
    crop: CropSpec
    detector: str
    frames: list[FrameRecord] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def by_index(self) -> dict[int, FrameRecord]:
        """Frames keyed by frame index."""
        return {f.index: f for f in self.frames}

    @property
    def face_count(self) -> int:
        return sum(len(f.faces) for f in self.frames)

    @property
    def frames_without_face(self) -> int:
        return sum(1 for f in self.frames if not f.faces)


def reviewed_frames(al: Alignments, folder: Path) -> tuple[list[FrameRecord], int]:
    """The frames of ``al`` less the faces whose crops were deleted from ``folder`` (deleting
    a crop, a false detection or the wrong person, is how a review drops a face), and how
    many faces that dropped. A file moved away from its crops, so that none of them is in
    ``folder``, keeps every face; so do faces without a crop file."""
    named = {Path(f.crop_file).name for fr in al.frames for f in fr.faces if f.crop_file}
    present = named & {p.name for p in Path(folder).iterdir()} if named else set()
    if not present or present == named:
        return list(al.frames), 0
    frames = [
        replace(
            frame,
            faces=tuple(
                f for f in frame.faces if not f.crop_file or Path(f.crop_file).name in present
            ),
        )
        for frame in al.frames
    ]
    return frames, len(named - present)


def _r(x: float, nd: int = 3) -> float:
    return round(float(x), nd)


def _face_to_dict(face: FaceRecord) -> dict[str, Any]:
    return {
        "box": [_r(v, 2) for v in np.asarray(face.box).reshape(4)],
        "score": _r(face.score, 4),
        "landmarks": [[_r(x), _r(y)] for x, y in np.asarray(face.landmarks).reshape(68, 2)],
        # Full precision: the matrix must invert back onto the frame exactly.
        "matrix": [[float(v) for v in row] for row in np.asarray(face.matrix).reshape(2, 3)],
        "crop_file": face.crop_file,
        "descriptor": None
        if face.descriptor is None
        else [_r(v, 5) for v in np.asarray(face.descriptor).reshape(-1)],
        "track_id": int(face.track_id),
    }


def alignments_to_dict(al: Alignments) -> dict[str, Any]:
    """The JSON-ready dict of ``al`` (what :func:`save_alignments` writes)."""
    return {
        "schema_version": SCHEMA_VERSION,
        "source": str(al.source),
        "frame_count": int(al.frame_count),
        "fps": None if al.fps is None else f"{al.fps.numerator}/{al.fps.denominator}",
        "width": int(al.width),
        "height": int(al.height),
        "crop": config_to_dict(al.crop),
        "detector": al.detector,
        "extra": al.extra,
        "frames": [
            {
                "index": int(fr.index),
                "timestamp": _r(fr.timestamp, 6),
                "detected": bool(fr.detected),
                "faces": [_face_to_dict(f) for f in fr.faces],
            }
            for fr in sorted(al.frames, key=lambda f: f.index)
        ],
    }


def save_alignments(path: Path | str, alignments: Alignments) -> None:
    """Write ``alignments`` to ``path`` atomically (temp file, then rename).

    The suffix picks the format: ``.json`` (default, human-readable) or ``.npz`` (numpy
    arrays for the per-face numbers plus a JSON header; compact and fast for long videos;
    read without pickle).
    """
    path = Path(path)
    if path.suffix.lower() == ".npz":
        _save_npz(path, alignments)
        return
    text = json.dumps(alignments_to_dict(alignments), separators=(",", ":"))
    write_text_atomic(path, text + "\n")


_NPZ_ARRAYS = ("box", "landmarks", "matrix")


def _save_npz(path: Path, al: Alignments) -> None:
    faces = [f for fr in sorted(al.frames, key=lambda f: f.index) for f in fr.faces]
    header = alignments_to_dict(al)
    for fr in header["frames"]:
        for fc in fr["faces"]:
            for key in (*_NPZ_ARRAYS, "descriptor"):
                fc.pop(key)
    desc_len = max((len(f.descriptor) for f in faces if f.descriptor is not None), default=0)
    descriptors = np.zeros((len(faces), desc_len), np.float32)
    has_desc = np.zeros(len(faces), bool)
    for i, f in enumerate(faces):
        if f.descriptor is not None:
            descriptors[i], has_desc[i] = f.descriptor, True
    arrays = {
        "header": np.frombuffer(json.dumps(header).encode("utf-8"), np.uint8),
        "box": np.array([f.box for f in faces], np.float32).reshape(-1, 4),
        "landmarks": np.array([f.landmarks for f in faces], np.float32).reshape(-1, 68, 2),
        "matrix": np.array([f.matrix for f in faces], np.float64).reshape(-1, 2, 3),
        "descriptor": descriptors,
        "has_descriptor": has_desc,
    }
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(fh, **arrays)


def _read_npz(path: Path) -> dict[str, Any]:
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
        raw = json.loads(arrays["header"].tobytes().decode("utf-8"))
        k = 0
        for fr in raw["frames"]:
            for fc in fr["faces"]:
                for key in _NPZ_ARRAYS:
                    fc[key] = arrays[key][k]
                fc["descriptor"] = arrays["descriptor"][k] if arrays["has_descriptor"][k] else None
                k += 1
        if k != len(arrays["landmarks"]):
            raise ValueError(
                f"header names {k} faces but the arrays hold {len(arrays['landmarks'])}"
            )
    except (OSError, ValueError, KeyError, IndexError, TypeError, zipfile.BadZipFile) as exc:
        raise FaceswapError(
            f"{path}: corrupt alignments file ({_describe(exc)}); "
            "delete it and re-run `faceswap extract`"
        ) from None
    return raw


def load_alignments(path: Path | str) -> Alignments:
    """Read an alignments file written by :func:`save_alignments` (any known version).

    A folder is accepted and means its ``alignments.json``. A missing, corrupt, foreign or
    newer-version file raises :class:`FaceswapError` saying what is wrong and what to do.
    """
    path = Path(path)
    if path.is_dir():
        path = path / ALIGNMENTS_NAME
    if not path.is_file():
        raise FaceswapError(
            f"{path}: no alignments file; run `faceswap extract` on the source first"
        )
    try:
        if path.suffix.lower() == ".npz":
            raw = _read_npz(path)
        else:
            raw = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        where = f" at line {exc.lineno}" if isinstance(exc, json.JSONDecodeError) else ""
        raise FaceswapError(
            f"{path}: corrupt alignments file (not valid JSON{where}); "
            "delete it and re-run `faceswap extract`"
        ) from None
    if not isinstance(raw, dict) or "schema_version" not in raw:
        raise FaceswapError(
            f"{path}: not a faceswap alignments file (no schema_version); "
            "point to the alignments.json written by `faceswap extract`"
        )
    version = raw["schema_version"]
    if not isinstance(version, int) or version < 1:
        raise FaceswapError(
            f"{path}: invalid schema_version {version!r}; re-run `faceswap extract`"
        )
    if version > SCHEMA_VERSION:
        raise FaceswapError(
            f"{path}: alignments schema version {version} is newer than this faceswap "
            f"supports ({SCHEMA_VERSION}); upgrade faceswap or re-run `faceswap extract`"
        )
    while version < SCHEMA_VERSION:
        if version not in _MIGRATIONS:
            raise FaceswapError(
                f"{path}: alignments schema version {version} can no longer be read; "
                "re-run `faceswap extract`"
            )
        raw = _MIGRATIONS[version](raw)
        version += 1
    try:
        return _from_dict(raw)
    except (KeyError, TypeError, ValueError, ZeroDivisionError, FaceswapError) as exc:
        raise FaceswapError(
            f"{path}: corrupt alignments file ({_describe(exc)}); "
            "delete it and re-run `faceswap extract`"
        ) from None


def _describe(exc: Exception) -> str:
    if isinstance(exc, KeyError):
        return f"missing field {exc.args[0]!r}"
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _array(value: Any, shape: tuple[int, ...], dtype: type, what: str) -> np.ndarray:
    arr = np.asarray(value, dtype=dtype)
    if arr.shape != shape:
        raise ValueError(f"{what} has shape {arr.shape}, expected {shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{what} has non-finite values")
    return arr


def _from_dict(raw: dict[str, Any]) -> Alignments:
    fps_raw = raw["fps"]
    fps = None if fps_raw is None else Fraction(str(fps_raw))
    frames = []
    for fr in raw["frames"]:
        idx = int(fr["index"])
        faces = []
        for k, fc in enumerate(fr["faces"]):
            what = f"frame {idx} face {k}"
            desc = fc.get("descriptor")
            faces.append(
                FaceRecord(
                    box=_array(fc["box"], (4,), np.float32, f"{what} box"),
                    score=float(fc["score"]),
                    landmarks=_array(fc["landmarks"], (68, 2), np.float32, f"{what} landmarks"),
                    matrix=_array(fc["matrix"], (2, 3), np.float64, f"{what} matrix"),
                    crop_file=str(fc.get("crop_file", "")),
                    descriptor=None
                    if desc is None
                    else _array(desc, (len(desc),), np.float32, f"{what} descriptor"),
                    track_id=int(fc.get("track_id", -1)),
                )
            )
        ts = float(fr["timestamp"])
        if not math.isfinite(ts):
            raise ValueError(f"frame {idx} timestamp is not finite")
        frames.append(
            FrameRecord(index=idx, timestamp=ts, faces=tuple(faces), detected=bool(fr["detected"]))
        )
    crop = config_from_dict(CropSpec, raw["crop"], source="crop")
    return Alignments(
        source=str(raw["source"]),
        frame_count=int(raw["frame_count"]),
        fps=fps,
        width=int(raw["width"]),
        height=int(raw["height"]),
        crop=crop,
        detector=str(raw["detector"]),
        frames=sorted(frames, key=lambda f: f.index),
        extra=dict(raw.get("extra") or {}),
    )

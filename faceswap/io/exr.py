"""OpenEXR frames: scene-linear plates in, and out again with the plate's own pixels kept.

EXR holds scene-linear light in half or full floats, and the faces were learned from
display-referred pictures, so faceswap looks at an EXR through the sRGB transfer (values
above 1.0, highlights brighter than white, clip in what the detector and the models see):
:func:`read_display` gives 16-bit (or 8-bit) display-referred RGB like any deep image, and
:func:`write_exr` takes such a picture back to linear half floats. Converting an EXR plate to
EXR frames keeps every pixel outside the swapped faces as the plate's own float, highlights
included (:func:`composite_linear`), and the plate's header (windows, pixel aspect,
chromaticities, timecode...).

The OpenEXR bindings (``OpenEXR`` on PyPI) read and write the files; cv2's wheels are built
without EXR.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from faceswap.errors import FaceswapError
from faceswap.io.files import atomic_path

EXR_SUFFIXES = frozenset({".exr"})

#: Header attributes that describe the pixels written, not the picture: never copied from a
#: plate's header onto a new file.
_OWN_ATTRIBUTES = frozenset({"channels", "type", "tiles", "chunkCount", "version", "name"})


def is_exr(path: Path | str) -> bool:
    return Path(path).suffix.lower() in EXR_SUFFIXES


def _openexr() -> Any:
    try:
        import OpenEXR
    except ImportError:  # pragma: no cover - a dependency; only a broken install lacks it
        raise FaceswapError(
            "OpenEXR frames need the OpenEXR package: pip install OpenEXR"
        ) from None
    return OpenEXR


def srgb_encode(linear: np.ndarray) -> np.ndarray:
    """Scene-linear values to sRGB display values in [0, 1] (clipped), float32."""
    x = np.clip(np.asarray(linear, np.float32), 0.0, 1.0)
    return np.where(
        x <= 0.0031308, 12.92 * x, 1.055 * np.power(x, 1.0 / 2.4, dtype=np.float32) - 0.055
    ).astype(np.float32)


def srgb_decode(display: np.ndarray) -> np.ndarray:
    """sRGB display values in [0, 1] back to linear, float32."""
    d = np.asarray(display, np.float32)
    return np.where(
        d <= 0.04045, d / 12.92, np.power((d + 0.055) / 1.055, 2.4, dtype=np.float32)
    ).astype(np.float32)


@dataclass(frozen=True, eq=False)
class ExrPlate:
    """An EXR file's picture: ``rgb`` float32 (H, W, 3) linear, its ``header`` attributes
    and the pixel type its RGB was stored in (``float16`` half or ``float32``)."""

    rgb: np.ndarray
    header: dict[str, Any]
    dtype: np.dtype


def read_exr(path: Path | str) -> ExrPlate:
    """The linear RGB of an EXR file, with its header and pixel type.

    Its RGB channels are read (a grey ``Y`` file repeated in three); alpha and other layers
    are left out, NaN reads as 0.

    Raises:
        FaceswapError: missing, unreadable, or without RGB or Y channels.
    """
    path = Path(path)
    if not path.is_file():
        raise FaceswapError(f"{path}: no such image file; check the path")
    openexr = _openexr()
    try:
        with openexr.File(str(path)) as exr:
            # Copies: the file's header and channels are emptied when it closes.
            header = dict(exr.header())
            channels = {name: np.array(ch.pixels) for name, ch in exr.channels().items()}
    except Exception:
        raise FaceswapError(
            f"{path}: not a readable OpenEXR file (corrupt or cut short); re-export it or "
            "remove it from the folder"
        ) from None
    if "RGB" in channels or "RGBA" in channels:
        rgb = channels.get("RGB", channels.get("RGBA"))[..., :3]  # type: ignore[index]
    elif all(name in channels for name in "RGB"):
        rgb = np.stack([channels[name] for name in "RGB"], axis=-1)
    elif "Y" in channels:
        rgb = np.repeat(np.asarray(channels["Y"])[..., None], 3, axis=-1)
    else:
        raise FaceswapError(
            f"{path}: an EXR without R, G, B (or Y) channels ({', '.join(sorted(channels))}); "
            "export the beauty pass as RGB"
        )
    dtype = np.dtype(np.float32 if np.asarray(rgb).dtype == np.float32 else np.float16)
    linear = np.nan_to_num(np.asarray(rgb, np.float32), nan=0.0, posinf=65504.0, neginf=0.0)
    return ExrPlate(np.ascontiguousarray(linear), header, dtype)


def read_display(path: Path | str, *, keep_16bit: bool = False) -> np.ndarray:
    """An EXR file as display-referred RGB: uint8, or uint16 with ``keep_16bit`` (sRGB)."""
    peak = 65535.0 if keep_16bit else 255.0
    display = np.rint(srgb_encode(read_exr(path).rgb) * peak)
    return display.astype(np.uint16 if keep_16bit else np.uint8)


def to_linear(image: np.ndarray) -> np.ndarray:
    """Display-referred RGB (uint8 or uint16, sRGB) as linear float32."""
    peak = 65535.0 if image.dtype == np.uint16 else 255.0
    return srgb_decode(image.astype(np.float32) / peak)


def composite_linear(image: np.ndarray, plate: np.ndarray, matte: np.ndarray | None) -> np.ndarray:
    """The linear picture of ``image``, with the ``plate``'s own floats where ``matte`` is 0.

    Args:
        image: display-referred output frame (uint8 or uint16).
        plate: the linear float32 RGB it was made from (same size).
        matte: uint8 (H, W), non-zero where the faces were blended in; None: nowhere.
    """
    if matte is None:
        return plate
    linear = to_linear(image)
    return np.where(matte[..., None] > 0, linear, plate).astype(np.float32)


def exr_header(
    text: Mapping[str, str] | None = None, like: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The header of a new EXR: ``like``'s attributes (a plate's) where given, ZIP
    compression, and ``text`` (provenance tags) as string attributes."""
    openexr = _openexr()
    header: dict[str, Any] = {"compression": openexr.ZIP_COMPRESSION}
    for key, value in (like or {}).items():
        if key not in _OWN_ATTRIBUTES:
            header[key] = value
    header["type"] = openexr.scanlineimage
    for key, value in (text or {}).items():
        header[str(key)] = str(value)
    return header


def write_exr(
    path: Path | str,
    rgb: np.ndarray,
    *,
    text: Mapping[str, str] | None = None,
    like: ExrPlate | None = None,
) -> Path:
    """Write an EXR, atomically: half floats, or the pixel type of ``like``.

    Args:
        rgb: linear float RGB (H, W, 3), or display-referred uint8/uint16 (sRGB, taken back
            to linear first).
        text: string attributes to add (provenance tags).
        like: the plate the picture was made from: its header's attributes (windows, pixel
            aspect, chromaticities, timecode...) and pixel type are kept.

    Raises:
        FaceswapError: the file cannot be written.
    """
    path = Path(path)
    linear = to_linear(rgb) if rgb.dtype in (np.uint8, np.uint16) else np.asarray(rgb)
    if linear.ndim == 2:
        linear = np.repeat(linear[..., None], 3, axis=-1)
    if like is not None and like.dtype == np.float32:
        pixels = np.ascontiguousarray(linear.astype(np.float32))
    else:
        pixels = np.ascontiguousarray(np.clip(linear, -65504.0, 65504.0).astype(np.float16))
    openexr = _openexr()
    header = exr_header(text, like.header if like is not None else None)
    if "dataWindow" in header:
        window = np.asarray(header["dataWindow"]).reshape(2, 2)
        if tuple(window[1] - window[0] + 1) != (pixels.shape[1], pixels.shape[0]):
            # Another size than the plate's (a scaled output): the plate's windows do not fit.
            for key in ("dataWindow", "displayWindow"):
                header.pop(key, None)
    try:
        with atomic_path(path) as tmp, openexr.File(header, {"RGB": pixels}) as exr:
            exr.write(str(tmp))
    except FaceswapError:
        raise
    except Exception as exc:
        raise FaceswapError(f"{path}: cannot write the EXR ({exc}); check the folder") from None
    return path


def exr_text(path: Path | str) -> dict[str, str]:
    """The string attributes of an EXR file's header (``{}`` when it has none)."""
    openexr = _openexr()
    try:
        with openexr.File(str(path), header_only=True) as exr:
            # The header is the file's own dict, emptied when the file closes.
            return {str(k): v for k, v in exr.header().items() if isinstance(v, str)}
    except Exception:
        raise ValueError(f"{path}: not an OpenEXR file") from None

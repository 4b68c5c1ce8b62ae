"""Image files: read as RGB, write atomically, list a folder in natural order.

cv2 works in BGR; the conversion to and from RGB happens here and nowhere else.
"""

from __future__ import annotations

import json
import re
import struct
import zlib
from collections.abc import Iterator, Mapping
from pathlib import Path

import cv2
import numpy as np

from faceswap.errors import FaceswapError
from faceswap.io.exr import EXR_SUFFIXES, read_display, write_exr
from faceswap.io.files import atomic_path

# Extensions read as images, matched case-insensitively: those of cv2's default build, and
# OpenEXR through its own bindings (faceswap.io.exr).
IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".jp2", ".ppm", ".pgm", ".exr"}
)

# Fast PNG (zlib level 1): frames and face crops are written by the thousand, and level 3+
# costs several times the time for ~10-30% smaller files.
PNG_COMPRESSION = 1
JPEG_QUALITY = 95

_DIGITS = re.compile(r"(\d+)")


def natural_key(name: str) -> tuple[tuple[int, int | str], ...]:
    """Sort key that orders ``img2`` before ``img10`` (case-insensitive otherwise)."""
    parts = _DIGITS.split(name)
    return tuple((0, int(p)) if p.isdigit() else (1, p.lower()) for p in parts if p != "")


def is_image_file(path: Path | str) -> bool:
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def list_images(folder: Path | str) -> list[Path]:
    """Image files directly inside ``folder`` (not recursive), in natural order.

    Hidden files (``.name``, e.g. our own temporary files) are skipped.

    Raises:
        FaceswapError: ``folder`` is missing or not a folder.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FaceswapError(f"{folder}: no such folder; check the path")
    files = [
        p
        for p in folder.iterdir()
        if p.is_file() and is_image_file(p) and not p.name.startswith(".")
    ]
    return sorted(files, key=lambda p: natural_key(p.name))


def read_image(path: Path | str, *, keep_16bit: bool = False) -> np.ndarray:
    """Read an image file as RGB uint8 HxWx3.

    Grey images are expanded to 3 channels, alpha is dropped, 16-bit images are scaled to
    8 bits, or with ``keep_16bit`` come as uint16 (0-65535), as do float images (0-1).
    OpenEXR files (scene-linear) come through the sRGB transfer (see :mod:`faceswap.io.exr`).

    Raises:
        FaceswapError: the file is missing, empty or not a readable image.
    """
    path = Path(path)
    if not path.is_file():
        raise FaceswapError(f"{path}: no such image file; check the path")
    if path.suffix.lower() in EXR_SUFFIXES:
        return read_display(path, keep_16bit=keep_16bit)
    # imdecode from bytes: cv2.imread cannot open some non-ASCII paths on Windows.
    data = np.fromfile(path, dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if image is None:
        raise FaceswapError(
            f"{path}: not a readable image (corrupt, empty or unsupported format); "
            "re-export it or remove it from the folder"
        )
    if image.dtype == np.uint16:
        if not keep_16bit:
            image = (image >> 8).astype(np.uint8)
    elif image.dtype != np.uint8:
        # Float images hold 0-1 (or, from some writers, 0-255).
        peak = 65535.0 if keep_16bit else 255.0
        scale = peak if image.max() <= 1.0 else peak / 255.0
        image = np.clip(np.rint(image * scale), 0, peak)
        image = image.astype(np.uint16 if keep_16bit else np.uint8)
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def peak_value(image: np.ndarray) -> float:
    """The white level of an image's dtype: 255 for uint8, 65535 for uint16."""
    return 65535.0 if image.dtype == np.uint16 else 255.0


def as_8bit(image: np.ndarray) -> np.ndarray:
    """``image`` as uint8: a uint16 one scaled (65535 -> 255, rounded), a uint8 one as is."""
    if image.dtype == np.uint8:
        return image
    return cv2.convertScaleAbs(image, alpha=255.0 / 65535.0)


def image_size(path: Path | str) -> tuple[int, int]:
    """``(width, height)`` of an image file (decodes it; cv2 has no header-only read)."""
    image = read_image(path)
    return image.shape[1], image.shape[0]


def encode_image(rgb: np.ndarray, suffix: str, *, jpeg_quality: int = JPEG_QUALITY) -> bytes:
    """Encode RGB uint8 HxWx3 (or HxW grey) to the bytes of a ``suffix`` file (``.png``...);
    uint16 (16 bits a component) to PNG or TIFF."""
    suffix = suffix.lower()
    if rgb.ndim not in (2, 3) or rgb.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"expected uint8 HxWx3 or HxW, got {rgb.dtype} {rgb.shape}")
    if rgb.dtype == np.uint16 and suffix not in SIXTEEN_BIT_SUFFIXES:
        raise FaceswapError(f"{suffix} holds 8 bits; write 16-bit frames as .png or .tif")
    image = rgb if rgb.ndim == 2 else cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    params: list[int] = []
    if suffix == ".png":
        params = [cv2.IMWRITE_PNG_COMPRESSION, PNG_COMPRESSION]
    elif suffix in {".jpg", ".jpeg"}:
        params = [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality]
    elif suffix == ".webp":
        params = [cv2.IMWRITE_WEBP_QUALITY, jpeg_quality]
    ok, buf = cv2.imencode(suffix, image, params)
    if not ok:
        raise FaceswapError(f"cannot encode an image as {suffix}; use .png or .jpg")
    return buf.tobytes()


#: Image formats written with 16 bits a component (EXR: half floats, linear).
SIXTEEN_BIT_SUFFIXES = frozenset({".png", ".tif", ".tiff", ".exr"})

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _png_chunks(data: bytes) -> Iterator[tuple[bytes, bytes, int, int]]:
    """``(type, body, start, end)`` of each chunk of a PNG file's bytes."""
    if not data.startswith(_PNG_SIGNATURE):
        raise ValueError("not a PNG file")
    pos = len(_PNG_SIGNATURE)
    while pos + 8 <= len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        end = pos + 12 + length
        yield kind, data[pos + 8 : pos + 8 + length], pos, end
        pos = end


def png_with_text(data: bytes, text: Mapping[str, str]) -> bytes:
    """PNG bytes with ``text`` added as ``tEXt`` chunks right after the header: metadata
    that travels with the single file (keys of 1-79 Latin-1 characters)."""
    chunks = b""
    for key, value in text.items():
        body = key.encode("latin-1") + b"\0" + value.encode("latin-1", "replace")
        crc = zlib.crc32(b"tEXt" + body)
        chunks += struct.pack(">I", len(body)) + b"tEXt" + body + struct.pack(">I", crc)
    kind, _, _, header_end = next(_png_chunks(data))
    if kind != b"IHDR":
        raise ValueError("PNG without a leading IHDR chunk")
    return data[:header_end] + chunks + data[header_end:]


def png_text(data: bytes) -> dict[str, str]:
    """The ``tEXt`` chunks of PNG bytes as a dict (``{}`` for a PNG without any)."""
    out = {}
    for kind, body, _, _ in _png_chunks(data):
        if kind == b"tEXt" and b"\0" in body:
            key, _, value = body.partition(b"\0")
            out[key.decode("latin-1")] = value.decode("latin-1")
    return out


JPEG_SUFFIXES = frozenset({".jpg", ".jpeg"})
_JPEG_COMMENT = 0xFE
_JPEG_START_OF_SCAN = 0xDA


def _jpeg_segments(data: bytes) -> Iterator[tuple[int, bytes, int]]:
    """``(marker, body, end)`` of each header segment of JPEG bytes, up to the first scan."""
    if data[:2] != b"\xff\xd8":
        raise ValueError("not a JPEG file")
    pos = 2
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        marker = data[pos + 1]
        if marker == 0xFF:  # a fill byte before the marker
            pos += 1
            continue
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        end = pos + 2 + length
        yield marker, data[pos + 4 : end], end
        if marker == _JPEG_START_OF_SCAN:
            return
        pos = end


def jpeg_with_comment(data: bytes, comment: str) -> bytes:
    """JPEG bytes with ``comment`` (UTF-8, under 64 KiB) as a COM segment after the APPn
    segments (JFIF's APP0 has to stay first); the compressed image is untouched."""
    body = comment.encode("utf-8")
    if len(body) > 0xFFFF - 2:
        raise ValueError(f"a JPEG comment holds at most 65533 bytes, got {len(body)}")
    at = 2
    for marker, _, end in _jpeg_segments(data):
        if not 0xE0 <= marker <= 0xEF:
            break
        at = end
    segment = bytes((0xFF, _JPEG_COMMENT)) + struct.pack(">H", len(body) + 2) + body
    return data[:at] + segment + data[at:]


def jpeg_comments(data: bytes) -> list[str]:
    """The COM segments of JPEG bytes, in file order (``[]`` for a JPEG without any)."""
    return [
        body.decode("utf-8", "replace")
        for marker, body, _ in _jpeg_segments(data)
        if marker == _JPEG_COMMENT
    ]


_TIFF_DESCRIPTION = 270  # the ImageDescription tag (ASCII)


def _tiff_layout(data: bytes) -> tuple[str, int, list[bytes], int]:
    """(byte order, first IFD offset, its 12-byte entries, next-IFD offset) of a TIFF."""
    endian = {b"II": "<", b"MM": ">"}.get(data[:2])
    if endian is None or data[2:4] != struct.pack(endian + "H", 42):
        raise ValueError("not a (classic) TIFF file")
    (ifd,) = struct.unpack(endian + "I", data[4:8])
    (count,) = struct.unpack(endian + "H", data[ifd : ifd + 2])
    entries = [data[ifd + 2 + 12 * i : ifd + 14 + 12 * i] for i in range(count)]
    (after,) = struct.unpack(endian + "I", data[ifd + 2 + 12 * count : ifd + 6 + 12 * count])
    return endian, ifd, entries, after


def tiff_with_description(data: bytes, description: str) -> bytes:
    """TIFF bytes whose first image carries ``description`` as its ImageDescription.

    The string and a copy of the first IFD with the tag added go at the end of the file and
    the header points at that copy; the image data and the other tags stay where they are.
    """
    endian, _, entries, after = _tiff_layout(data)
    text = description.encode("latin-1", "replace") + b"\0"
    text = text.ljust(5, b"\0")  # over 4 bytes: stored by offset, not in the entry
    out = bytearray(data)
    out += b"\0" * (len(out) % 2)  # TIFF offsets are word-aligned
    text_at = len(out)
    out += text + b"\0" * (len(text) % 2)
    tag = struct.Struct(endian + "H")
    kept = [e for e in entries if tag.unpack(e[:2])[0] != _TIFF_DESCRIPTION]
    kept.append(struct.pack(endian + "HHII", _TIFF_DESCRIPTION, 2, len(text), text_at))
    kept.sort(key=lambda e: tag.unpack(e[:2])[0])
    ifd_at = len(out)
    out += tag.pack(len(kept)) + b"".join(kept) + struct.pack(endian + "I", after)
    out[4:8] = struct.pack(endian + "I", ifd_at)
    return bytes(out)


def tiff_description(data: bytes) -> str | None:
    """The ImageDescription of a TIFF's first image, or None."""
    endian, _, entries, _ = _tiff_layout(data)
    for entry in entries:
        tag, kind, count, value = struct.unpack(endian + "HHII", entry)
        if tag == _TIFF_DESCRIPTION and kind == 2:
            raw = entry[8 : 8 + count] if count <= 4 else data[value : value + count]
            return raw.split(b"\0", 1)[0].decode("latin-1")
    return None


def write_image(
    path: Path | str,
    rgb: np.ndarray,
    *,
    jpeg_quality: int = JPEG_QUALITY,
    text: Mapping[str, str] | None = None,
) -> Path:
    """Write RGB uint8 HxWx3 (uint16 for PNG, TIFF) atomically; the suffix picks the format
    (PNG: fast compression; ``.exr``: linear half floats through the sRGB transfer).

    ``text``: metadata to embed: a PNG's ``tEXt`` chunks, a TIFF's ImageDescription or a
    JPEG's comment (both as JSON), an EXR's header attributes; other formats ignore it.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        FaceswapError: the folder cannot be created or written.
    """
    path = Path(path)
    if path.suffix.lower() in EXR_SUFFIXES:
        return write_exr(path, rgb, text=text)
    data = encode_image(rgb, path.suffix, jpeg_quality=jpeg_quality)
    if text and path.suffix.lower() == ".png":
        data = png_with_text(data, text)
    elif text and path.suffix.lower() in (".tif", ".tiff"):
        data = tiff_with_description(data, json.dumps(dict(text), sort_keys=True))
    elif text and path.suffix.lower() in JPEG_SUFFIXES:
        data = jpeg_with_comment(data, json.dumps(dict(text), sort_keys=True))
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return path

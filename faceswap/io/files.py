"""Atomic writes: write to a temporary file beside the target, then rename over it."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from faceswap.errors import FaceswapError


@contextlib.contextmanager
def atomic_path(target: Path | str, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; rename it onto ``target`` on success.

    On any exception the temporary file is removed and ``target`` is left as it was, so a
    crash never leaves a half-written file under the final name. ``suffix`` defaults to the
    target's own (ffmpeg picks the container from it).
    """
    target = Path(target)
    ensure_writable_dir(target.parent)
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{target.stem}.",
        suffix=suffix if suffix is not None else target.suffix,
        dir=target.parent,
    )
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def write_bytes_atomic(target: Path | str, data: bytes) -> None:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)
        _fsync(tmp)


def write_text_atomic(target: Path | str, text: str) -> None:
    write_bytes_atomic(target, text.encode("utf-8"))


def _fsync(path: Path) -> None:
    with open(path, "rb+") as fh:
        os.fsync(fh.fileno())


def ensure_writable_dir(folder: Path | str) -> Path:
    """Create ``folder`` if needed and check we can write there; else a clear error."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise FaceswapError(
            f"{folder}: exists and is not a folder; choose another output path"
        ) from None
    except OSError as exc:
        raise FaceswapError(
            f"{folder}: cannot create output folder ({exc.strerror}); choose another path"
        ) from None
    if not os.access(folder, os.W_OK):
        raise FaceswapError(
            f"{folder}: output folder is not writable; choose another path or fix permissions"
        )
    return folder

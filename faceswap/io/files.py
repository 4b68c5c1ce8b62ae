"""Atomic writes: write to a temporary file beside the target, then rename over it."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from faceswap.errors import FaceswapError


@contextlib.contextmanager
def atomic_path(target: Path | str, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; rename it onto ``target`` on success.

    On any exception the temporary file is removed and ``target`` is left as it was, so a
    crash never leaves a half-written file under the final name; a full disk becomes a
    one-line :class:`FaceswapError`. ``suffix`` defaults to the target's own (ffmpeg picks
    the container from it).
    """
    target = Path(target)
    ensure_writable_dir(target.parent)
    tmp = make_temp_file(
        target.parent,
        prefix=f".{target.stem}.",
        suffix=suffix if suffix is not None else target.suffix,
    )
    try:
        yield tmp
        os.replace(tmp, target)
    except OSError as exc:
        if is_disk_full(exc):
            raise FaceswapError(
                f"{target}: no space left on its disk; free some space or write elsewhere"
            ) from None
        raise
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


# Read once, while the process has one thread: os.umask can only be read by setting it.
_UMASK = os.umask(0o022)
os.umask(_UMASK)


def make_temp_file(folder: Path, prefix: str, suffix: str = "") -> Path:
    """A new empty file in ``folder`` with the permissions a plain ``open()`` would give.

    ``tempfile`` creates its files 0600 and its folders 0700, private to the user; renamed
    into place they would keep that, and a video or model meant to be shared would not be.
    """
    with _creating_in(folder):
        fd, name = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=folder)
    os.close(fd)
    os.chmod(name, 0o666 & ~_UMASK)
    return Path(name)


def make_temp_dir(folder: Path, prefix: str) -> Path:
    """A new folder in ``folder`` with the permissions of a plain ``mkdir()`` (see above)."""
    with _creating_in(folder):
        name = tempfile.mkdtemp(prefix=prefix, dir=folder)
    os.chmod(name, 0o777 & ~_UMASK)
    return Path(name)


@contextlib.contextmanager
def _creating_in(folder: Path) -> Iterator[None]:
    """One line for a folder that refuses new files although the access check let it by
    (a read-only or special file system such as /proc, a network share's own rules)."""
    try:
        yield
    except OSError as exc:
        if is_disk_full(exc):
            raise FaceswapError(
                f"{folder}: no space left on its disk; free some space or write elsewhere"
            ) from None
        raise FaceswapError(
            f"{folder}: cannot create files there ({exc.strerror or exc}); choose another "
            "output path"
        ) from None


def write_bytes_atomic(target: Path | str, data: bytes) -> None:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)
        _fsync(tmp)


def write_text_atomic(target: Path | str, text: str) -> None:
    write_bytes_atomic(target, text.encode("utf-8"))


def _fsync(path: Path) -> None:
    with open(path, "rb+") as fh:
        os.fsync(fh.fileno())


_DISK_FULL_TEXT = ("no space left on device", "os error 28", "disk quota exceeded")


def is_disk_full(exc: BaseException, folder: Path | str | None = None) -> bool:
    """Whether ``exc`` reports a full disk (or quota): ``OSError`` ENOSPC/EDQUOT, the error
    safetensors raises for it (its text carries the OS error), or any write error while
    ``folder``'s disk has under 16 MiB left (torch.save then only says "unexpected pos")."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    if any(text in str(exc).lower() for text in _DISK_FULL_TEXT):
        return True
    if folder is not None and isinstance(exc, (OSError, RuntimeError)):
        with contextlib.suppress(OSError):
            return shutil.disk_usage(folder).free < 16 << 20
    return False


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

"""Which ffmpeg is used: a new enough system one, else the bundled one; the override wins."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from faceswap.errors import FaceswapError
from faceswap.io import ffmpeg_bin
from faceswap.io.ffmpeg_bin import FFMPEG_ENV, MIN_VERSION, locate_ffmpeg, parse_version


@pytest.fixture
def fresh_lookup(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Forget the cached choice before and after, so other tests see the real ffmpeg."""
    monkeypatch.delenv(FFMPEG_ENV, raising=False)
    locate_ffmpeg.cache_clear()
    ffmpeg_bin.version_of.cache_clear()
    yield
    locate_ffmpeg.cache_clear()
    ffmpeg_bin.version_of.cache_clear()


def _fake_ffmpeg(folder: Path, banner: str) -> Path:
    """An executable named ffmpeg that prints ``banner`` as its -version output."""
    folder.mkdir(parents=True, exist_ok=True)
    exe = folder / "ffmpeg"
    exe.write_text(f"#!/bin/sh\necho '{banner}'\n")
    exe.chmod(0o755)
    return exe


@pytest.mark.parametrize(
    ("banner", "expected"),
    [
        ("ffmpeg version 5.1.9-0+deb12u1 Copyright (c) 2000-2026", (5, 1)),
        ("ffmpeg version 7.0.2-static https://johnvansickle.com/ffmpeg/", (7, 0)),
        ("ffmpeg version n9.0.2-17-g2a571b6068-20260930 Copyright", (9, 0)),
        ("ffmpeg version 4.4.2-0ubuntu0.22.04.1 Copyright", (4, 4)),
        ("ffmpeg version N-118000-g1234abcd Copyright", (99, 0)),  # development branch
        ("ffmpeg version 2025-03-10-git-9e1f8a1b2c-full_build-www.gyan.dev", (99, 0)),
    ],
)
def test_parse_version(banner: str, expected: tuple[int, int]) -> None:
    assert parse_version(banner) == expected


def test_old_system_ffmpeg_is_passed_over_for_the_bundled_one(
    fresh_lookup: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = _fake_ffmpeg(tmp_path / "bin", "ffmpeg version 5.1.9-0+deb12u1 Copyright")
    monkeypatch.setenv("PATH", f"{old.parent}{os.pathsep}{os.environ['PATH']}")
    choice = locate_ffmpeg()
    assert choice.source == "imageio-ffmpeg" and choice.path != str(old)
    assert choice.version >= MIN_VERSION
    assert "5.1" in choice.note and str(old) in choice.note and FFMPEG_ENV in choice.note


def test_new_system_ffmpeg_is_used(
    fresh_lookup: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    new = _fake_ffmpeg(tmp_path / "bin", "ffmpeg version 9.1 Copyright")
    monkeypatch.setenv("PATH", f"{new.parent}{os.pathsep}{os.environ['PATH']}")
    choice = locate_ffmpeg()
    assert (choice.path, choice.source, choice.version, choice.note) == (
        str(new),
        "PATH",
        (9, 1),
        "",
    )


def test_override_wins_even_when_old_but_is_flagged(
    fresh_lookup: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = _fake_ffmpeg(tmp_path / "bin", "ffmpeg version 7.0.2-static")
    monkeypatch.setenv(FFMPEG_ENV, str(old))
    choice = locate_ffmpeg()
    assert choice.path == str(old) and choice.version == (7, 0)
    assert choice.note.startswith("WARNING") and "7.0" in choice.note


def test_override_that_is_not_executable_is_a_clear_error(
    fresh_lookup: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(FFMPEG_ENV, str(tmp_path / "missing"))
    with pytest.raises(FaceswapError, match=f"{FFMPEG_ENV}=.*missing is not an executable"):
        locate_ffmpeg()

"""Shared fixtures: generated clips and image folders with ground truth (see tests/media.py).

Session-scoped, so each is rendered and encoded once per test run. Treat them as read-only;
a test that modifies media should copy it into its own ``tmp_path`` first.
"""

from __future__ import annotations

import multiprocessing
from fractions import Fraction
from pathlib import Path

import pytest

from tests.media import ClipInfo, ImageFolderInfo, make_clip, make_image_folder


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run, instead of hanging at exit, when a test leaves worker processes alive.

    multiprocessing joins its children when the interpreter exits; one that outlives its test
    (a DataLoader worker kept by a traceback, say) would keep pytest, and CI, waiting.
    """
    leftovers = multiprocessing.active_children()
    if not leftovers:
        return
    for child in leftovers:
        child.kill()
        child.join(timeout=10)
    names = ", ".join(f"{c.name} (pid {c.pid})" for c in leftovers)
    writer = session.config.get_terminal_writer()
    writer.line()
    writer.line(f"ERROR: tests left worker processes alive, killed: {names}", red=True)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A session-wide folder holding the generated media."""
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="session")
def clip_one_face(media_dir: Path) -> ClipInfo:
    """48 frames, 640x360 at 25 fps, the astronaut moving/scaling/re-lit, AAC audio."""
    return make_clip(media_dir / "one_face.mp4", frames=48, fps=Fraction(25), audio=True)


@pytest.fixture(scope="session")
def clip_two_faces(media_dir: Path) -> ClipInfo:
    """24 frames at 25 fps: the astronaut (left) and Grace Hopper (right), with audio."""
    return make_clip(
        media_dir / "two_faces.mp4",
        frames=24,
        people=("astronaut", "grace_hopper"),
        seed=1,
    )


@pytest.fixture(scope="session")
def clip_with_blank_frames(media_dir: Path) -> ClipInfo:
    """30 frames at 30000/1001 fps; frames 0-2, 12-14 and 27-29 show no face; no audio."""
    return make_clip(
        media_dir / "blank_frames.mp4",
        frames=30,
        fps=Fraction(30000, 1001),
        audio=False,
        blank_frames=(0, 1, 2, 12, 13, 14, 27, 28, 29),
        seed=2,
    )


@pytest.fixture(scope="session")
def image_folder_faces(media_dir: Path) -> ImageFolderInfo:
    """12 PNG frames 640x360 (``frame_000000.png``...) of Grace Hopper."""
    return make_image_folder(media_dir / "image_folder", 12, people=("grace_hopper",), seed=3)


@pytest.fixture(scope="session")
def clip_audio_late(media_dir: Path) -> ClipInfo:
    """30 frames at 25 fps (mp4) whose audio starts 0.5 s after the first frame."""
    return make_clip(media_dir / "late.mp4", frames=30, audio_offset=0.5, seed=4)


@pytest.fixture(scope="session")
def clip_audio_early(media_dir: Path) -> ClipInfo:
    """48 frames at 25 fps (mkv) whose audio starts 0.3 s before the first frame."""
    return make_clip(media_dir / "early.mkv", frames=48, audio_offset=-0.3, seed=5)


@pytest.fixture(scope="session")
def clip_rotated(media_dir: Path) -> ClipInfo:
    """6 frames coded 320x192 with a 90-degree display rotation (shown 192x320), audio."""
    return make_clip(media_dir / "rotated.mp4", frames=6, width=320, height=192, rotation=90)

"""The invisible watermark: what embedding changes, and reading it back through a codec."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest

from faceswap.faces.align import landmark_region
from faceswap.io.video import VideoWriter, open_source
from faceswap.watermark import (
    FOUND_Z,
    FOUND_Z_REFRAMED,
    STRENGTH,
    Watermark,
    black_bars,
    field,
    read_watermark,
    read_watermark_reframed,
)
from tests.media import Scene


def _face_matte(shape: tuple[int, ...], landmarks: np.ndarray) -> np.ndarray:
    """A feathered blend matte over the faces, as convert's paste leaves it (uint8)."""
    hard = landmark_region(shape, landmarks).astype(np.uint8) * 255
    return cv2.GaussianBlur(hard, (0, 0), 3)


def _landmarks(scene: Scene, i: int) -> np.ndarray:
    return np.stack([face.landmarks for face in scene.faces(i)])


def _clean_and_marked(scene: Scene) -> tuple[list, list, list]:
    """Each frame's landmarks, the frames, and the frames marked under a face matte as
    convert marks them."""
    landmarks = [_landmarks(scene, i) for i in range(scene.frames)]
    clean = [scene.frame(i) for i in range(scene.frames)]
    marker = Watermark()
    marked = [
        marker(frame, i, _face_matte(frame.shape, lm))
        for i, (frame, lm) in enumerate(zip(clean, landmarks, strict=True))
    ]
    return landmarks, clean, marked


@pytest.fixture(scope="module")
def scene() -> Scene:
    return Scene(frames=24, seed=1)


def test_field_is_fixed_and_scales_with_the_frame() -> None:
    small = field(360, 640)
    assert small.dtype == np.float32 and small.shape == (360, 640)
    assert np.array_equal(small, field(360, 640))  # no hidden state: the same every run
    assert 0.7 < float(small.std()) < 1.0 and abs(float(small.mean())) < 0.05
    # Laid out in frame heights: a 720p frame's field, scaled down, is the 360p one.
    scaled = cv2.resize(field(720, 1280), (640, 360), interpolation=cv2.INTER_AREA)
    assert np.corrcoef(scaled.ravel(), small.ravel())[0, 1] > 0.9
    # Other keys (the decoys) are unrelated fields.
    assert abs(np.corrcoef(field(360, 640, key=1).ravel(), small.ravel())[0, 1]) < 0.05


def test_marks_only_under_the_matte_and_invisibly(scene: Scene) -> None:
    frame = scene.frame(0)
    matte = _face_matte(frame.shape, _landmarks(scene, 0))
    marked = Watermark()(frame, 0, matte)
    assert marked.dtype == np.uint8 and marked.shape == frame.shape
    diff = marked.astype(np.int16) - frame
    assert np.array_equal(marked[matte == 0], frame[matte == 0])
    assert np.abs(diff).max() <= np.ceil(STRENGTH * 1.9)
    assert np.count_nonzero(diff[matte == 255]) > 0.5 * diff[matte == 255].size
    # Grey: the same change in R, G and B (up to rounding), so no colour cast (where no
    # channel is clipped at black or white).
    unclipped = ((frame > 8) & (frame < 247)).all(-1)
    assert np.abs(diff[..., 0] - diff[..., 2])[unclipped].max() <= 1
    inside = diff[matte > 128].astype(np.float64)
    assert 10 * np.log10(255.0**2 / np.mean(inside**2)) > 39.0  # PSNR of the face, dB
    # Nothing to mark: the very same frame back.
    assert Watermark()(frame, 0, None) is frame
    assert Watermark()(frame, 0, np.zeros(frame.shape[:2], np.uint8)) is frame


def test_marks_16_bit_frames_at_the_same_strength(scene: Scene) -> None:
    frame8 = scene.frame(0)
    frame16 = frame8.astype(np.uint16) * 257
    matte = _face_matte(frame8.shape, _landmarks(scene, 0))
    diff16 = Watermark()(frame16, 0, matte).astype(np.int64) - frame16
    diff8 = Watermark()(frame8, 0, matte).astype(np.int64) - frame8
    assert Watermark()(frame16, 0, matte).dtype == np.uint16
    assert np.abs(diff16 / 257.0 - diff8).max() <= 1.0


def _encode(frames: list[np.ndarray], path: Path, size: tuple[int, int], crf: int) -> list:
    with VideoWriter(path, *size, Fraction(25), crf=crf, preset="veryfast") as writer:
        for frame in frames:
            writer.write(cv2.resize(frame, size, interpolation=cv2.INTER_AREA))
    return [f.image for f in open_source(path).iter_frames()]


@pytest.mark.parametrize(
    ("size", "crf"),
    [((640, 360), 23), ((640, 360), 28), ((1280, 720), 23), ((320, 180), 23)],
    ids=["360p-crf23", "360p-crf28", "upscaled-720p", "downscaled-180p"],
)
def test_survives_lossy_encodes_and_resizes(
    scene: Scene, tmp_path: Path, size: tuple[int, int], crf: int
) -> None:
    landmarks, clean, marked = _clean_and_marked(scene)
    scale = size[1] / scene.height
    for frames, expect_found in ((marked, True), (clean, False)):
        decoded = _encode(frames, tmp_path / "clip.mp4", size, crf)
        reading = read_watermark(
            (image, landmark_region(image.shape, lm * scale))
            for image, lm in zip(decoded, landmarks, strict=True)
        )
        assert reading.frames == reading.faces == scene.frames
        if expect_found:
            assert reading.found and not reading.mirrored, reading
        else:
            assert reading.z < 4.0 and not reading.found, reading
            assert reading.marked_frames <= 2


def test_found_in_a_mirrored_copy(scene: Scene, tmp_path: Path) -> None:
    # Re-uploads are often flipped left to right; the mirrored field is read alongside.
    landmarks, clean, marked = _clean_and_marked(scene)
    decoded = _encode([cv2.flip(f, 1) for f in marked], tmp_path / "flipped.mp4", (640, 360), 23)
    flipped = [np.stack([639 - lm[..., 0], lm[..., 1]], axis=-1) for lm in landmarks]
    reading = read_watermark(
        (image, landmark_region(image.shape, lm))
        for image, lm in zip(decoded, flipped, strict=True)
    )
    assert reading.found and reading.mirrored, reading
    reading = read_watermark(
        (cv2.flip(image, 1), landmark_region(image.shape, lm))
        for image, lm in zip(clean, flipped, strict=True)
    )
    assert reading.z < 4.0, reading


@pytest.mark.parametrize(("x0", "width"), [(100, 202), (0, 480), (219, 202)])
def test_found_in_a_copy_cropped_off_centre(
    scene: Scene, tmp_path: Path, x0: int, width: int
) -> None:
    # Re-framed for another screen around the subject (9:16 or 4:3 from 16:9): the same
    # height, the centre moved; the reader searches every horizontal offset.
    landmarks, clean, marked = _clean_and_marked(scene)
    moved = [lm - np.float32([x0, 0]) for lm in landmarks]
    shift = (x0 + width / 2 - 320) / 360
    for frames, is_marked in ((marked, True), (clean, False)):
        cropped = [np.ascontiguousarray(f[:, x0 : x0 + width]) for f in frames]
        decoded = _encode(cropped, tmp_path / "crop.mp4", (width, 360), 23)
        pairs = [(im, landmark_region(im.shape, lm)) for im, lm in zip(decoded, moved, strict=True)]
        reading = read_watermark_reframed(pairs)
        if is_marked:
            assert reading.found and reading.z >= FOUND_Z_REFRAMED, reading
            assert reading.searched == "offset"
            assert reading.shift == pytest.approx(shift, abs=1.5 / 360)
            if shift:  # where it was laid, the field is not: the plain reading misses it
                assert not read_watermark(pairs).found
        else:
            assert not reading.found and reading.z < FOUND_Z_REFRAMED / 2, reading


def test_found_in_a_crop_that_follows_the_subject(scene: Scene, tmp_path: Path) -> None:
    # A 1:1 window panning across the frame, 10 px a frame: each frame at its own offset.
    landmarks, clean, marked = _clean_and_marked(scene)
    starts = [40 + 10 * i for i in range(scene.frames)]
    for frames, is_marked in ((marked, True), (clean, False)):
        cropped = [
            np.ascontiguousarray(f[:, x : x + 360]) for f, x in zip(frames, starts, strict=True)
        ]
        decoded = _encode(cropped, tmp_path / "pan.mp4", (360, 360), 23)
        pairs = [
            (im, landmark_region(im.shape, lm - np.float32([x, 0])))
            for im, lm, x in zip(decoded, landmarks, starts, strict=True)
        ]
        reading = read_watermark_reframed(pairs)
        assert reading.found == is_marked, reading
        if is_marked:
            assert reading.searched == "moving" and reading.shift is None


def test_found_without_face_regions(scene: Scene, tmp_path: Path) -> None:
    _, clean, marked = _clean_and_marked(scene)
    decoded = _encode(marked, tmp_path / "clip.mp4", (640, 360), 18)
    reading = read_watermark((image, None) for image in decoded)
    assert reading.faces == 0 and reading.found, reading
    assert read_watermark((frame, None) for frame in clean).z < 4.0


def test_no_frames_no_evidence() -> None:
    reading = read_watermark(iter(()))
    assert reading.frames == 0 and reading.z == 0.0 and not reading.found
    assert FOUND_Z > 3.0


def test_a_small_face_in_a_full_hd_frame(tmp_path: Path) -> None:
    # A wide shot: the same 110-146 px face in a 1920x1080 frame, a ninth of the area it
    # has at 360p. The field must be fine enough to put enough cells in it.
    wide = Scene(width=1920, height=1080, frames=16, seed=1)
    landmarks = [_landmarks(wide, i) for i in range(wide.frames)]
    marked = [
        Watermark()(frame, i, _face_matte(frame.shape, lm))
        for i, (frame, lm) in enumerate(zip(wide.iter_frames(), landmarks, strict=True))
    ]
    decoded = _encode(marked, tmp_path / "wide.mp4", (1920, 1080), 23)
    reading = read_watermark(
        (image, landmark_region(image.shape, lm))
        for image, lm in zip(decoded, landmarks, strict=True)
    )
    assert reading.found, reading


def test_black_bars_are_found_and_dark_pictures_are_not_bars(scene: Scene) -> None:
    frames = [scene.frame(i) for i in range(4)]
    boxed = [np.pad(f, ((100, 60), (0, 0), (0, 0))) for f in frames]  # bars above and below
    assert black_bars(boxed) == (100, 460, 0, 640)
    pillar = [np.pad(f, ((0, 0), (80, 80), (0, 0)), constant_values=12) for f in frames]
    assert black_bars(pillar) == (0, 360, 80, 720)
    assert black_bars(frames) is None
    # A dark but textured picture is not a bar, nor is a line of bar only some frames show.
    night = [(f // 12).astype(np.uint8) for f in frames]
    assert black_bars(night) is None
    partly = [boxed[0], np.pad(frames[1], ((100, 60), (0, 0), (0, 0)), constant_values=200)]
    assert black_bars(partly) is None
    thin = [np.pad(f, ((2, 0), (0, 0), (0, 0))) for f in frames]  # under 1 % of the height
    assert black_bars(thin) is None
    assert black_bars([boxed[0], frames[1]]) is None  # a folder of photos of other sizes

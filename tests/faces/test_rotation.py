"""Faces turned in the picture: found in turned copies, fitted upright, followed as they turn."""

from __future__ import annotations

import numpy as np
import pytest

from faceswap.errors import FaceswapError
from faceswap.faces.align import CropSpec, alignment_matrix, warp_to_crop
from faceswap.faces.detectors import create_detector
from faceswap.faces.finder import FaceFinder
from faceswap.faces.rotation import (
    RotatingDetector,
    as_rotations,
    parse_rotations,
    roll_of,
    with_rotations,
)
from tests.media import Scene


@pytest.fixture(scope="module")
def hog():
    return create_detector("dlib-hog")


def _error(landmarks: np.ndarray, truth: np.ndarray) -> float:
    """Mean landmark error as a share of the distance between the outer eye corners."""
    return float(np.abs(landmarks - truth).mean() / np.linalg.norm(truth[45] - truth[36]))


def _turned(angle: float, person: str = "astronaut") -> tuple[np.ndarray, np.ndarray]:
    """A frame whose face is turned ``angle`` degrees clockwise, and its true landmarks."""
    scene = Scene(frames=2, people=(person,), roll=angle)
    return scene.frame(1), scene.faces(1)[0].landmarks


def test_a_step_tries_every_multiple_nearest_upright_first() -> None:
    assert parse_rotations("90") == (90.0, -90.0, 180.0)
    assert parse_rotations(45) == (45.0, -45.0, 90.0, -90.0, 135.0, -135.0, 180.0)
    assert len(parse_rotations("30")) == 11
    assert parse_rotations("270,90") == (90.0, -90.0)  # a list: exactly these, folded
    assert as_rotations([90]) == (90.0,) and as_rotations("90") == (90.0, -90.0, 180.0)
    assert as_rotations(None) == as_rotations("") == as_rotations(0) == ()


@pytest.mark.parametrize("text", ["abc", "0", "200", "-45", "0,90", ","])
def test_bad_rotate_values_say_what_to_give(text: str) -> None:
    with pytest.raises(FaceswapError, match="--rotate"):
        parse_rotations(text)


def test_roll_reads_how_far_the_face_is_turned() -> None:
    _, upright = _turned(0)
    for angle in (-150, -60, 30, 90, 170):
        _, truth = _turned(angle)
        turned_by = (roll_of(truth) - roll_of(upright) + 180) % 360 - 180
        assert turned_by == pytest.approx(angle, abs=1.0)


@pytest.mark.parametrize("angle", [60, 90, 135, 180, -100])
def test_turned_faces_are_found_and_fitted_where_upright_finds_none(hog, angle: float) -> None:
    image, truth = _turned(angle)
    assert len(hog.detect(image)) == 0  # beyond what the upright detector finds
    found = RotatingDetector(hog, parse_rotations("45")).detect(image)
    assert len(found) == 1
    assert _error(found.landmarks[0], truth) < 0.02
    middle = (found.boxes[0, :2] + found.boxes[0, 2:]) / 2
    assert np.linalg.norm(middle - truth.mean(axis=0)) < 0.3 * (
        found.boxes[0, 2] - found.boxes[0, 0]
    )


def test_a_face_found_upright_at_the_detectors_limit_is_fitted_at_its_roll(hog) -> None:
    image, truth = _turned(40)
    plain = hog.detect(image)
    assert len(plain) == 1 and _error(plain.landmarks[0], truth) > 0.05  # the loose fit
    settled = RotatingDetector(hog, parse_rotations("90")).detect(image)
    assert _error(settled.landmarks[0], truth) < 0.02


def test_no_face_in_any_copy_is_no_face(hog) -> None:
    blank = Scene(frames=1, blank_frames=(0,)).frame(0)
    rotating = RotatingDetector(hog, parse_rotations("90"))
    assert len(rotating.detect(blank)) == 0 and rotating.rotated_passes == 3


def test_a_face_turning_over_is_followed_with_upright_crops(hog) -> None:
    scene = Scene(frames=30, roll=6.0)  # upright to 174 degrees
    crop = CropSpec(64)
    plain = FaceFinder(hog, crop, detect_every=5)
    rotating = FaceFinder(with_rotations(hog, parse_rotations("45")), crop, detect_every=5)
    lost = 0
    first = None
    for i in range(scene.frames):
        frame, truth = scene.frame(i), scene.faces(i)[0].landmarks
        lost += not plain.find(frame)
        faces = rotating.find(frame)
        assert len(faces) == 1, i
        assert _error(faces[0].landmarks, truth) < 0.03, i
        aligned = warp_to_crop(frame, alignment_matrix(faces[0].landmarks, crop), 64)
        aligned = aligned.astype(np.float32).mean(axis=2)
        first = aligned if first is None else first
        # The crop stays upright: it looks like the first one (the lighting changes a little).
        assert np.corrcoef(aligned.ravel(), first.ravel())[0, 1] > 0.8, i
    assert lost >= 15  # the upright finder loses it once it turns past the detector's limit


def test_without_angles_the_detector_is_left_as_it_is(hog) -> None:
    assert with_rotations(hog, ()) is hog
    wrapped = with_rotations(hog, (90.0,))
    assert wrapped.name == "dlib-hog" and wrapped.upsample == hog.upsample

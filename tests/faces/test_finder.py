"""FaceFinder: tracking between detections, track ids, blanks, identity, size limits."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from faceswap.faces.align import CropSpec, invert_affine, transform_points
from faceswap.faces.detectors import create_detector
from faceswap.faces.finder import FaceFinder
from faceswap.faces.identity import IdentityFilter, face_descriptors
from faceswap.faces.smoothing import LandmarkSmoother
from tests.faces import synth


@pytest.fixture(scope="module")
def hog():
    return create_detector("dlib-hog")


@pytest.fixture(scope="module")
def two_people() -> list[synth.SynthFrame]:
    return synth.clip(40, second=True, blank=(15, 16))


def _error(face, truth: np.ndarray) -> float:
    eye = np.linalg.norm(truth[45] - truth[36])
    return float(np.abs(face.landmarks - truth).mean() / eye)


def _nearest(face, frame: synth.SynthFrame) -> str:
    return min(frame.truth, key=lambda k: _error(face, frame.truth[k]))


def test_tracking_finds_faces_in_as_many_frames_as_detecting_every_frame(hog, two_people):
    counts = {}
    for every in (1, 5):
        finder = FaceFinder(hog, CropSpec(64), detect_every=every)
        per_frame = [finder.find(f.image, f.timestamp) for f in two_people]
        counts[every] = sum(len(p) for p in per_frame)
        for frame, faces in zip(two_people, per_frame, strict=True):
            assert len(faces) == len(frame.truth)  # none in blank frames, both elsewhere
            for face in faces:
                assert _error(face, frame.truth[_nearest(face, frame)]) < 0.06
        if every == 5:
            assert finder.detections_run < len(two_people) / 2
    assert counts[5] >= counts[1]


def test_track_ids_keep_people_apart(hog, two_people):
    finder = FaceFinder(hog, CropSpec(64), detect_every=5)
    ids: dict[str, set[int]] = {"astronaut": set(), "hopper": set()}
    for frame in two_people[:15]:  # before the blank frames
        for face in finder.find(frame.image, frame.timestamp):
            ids[_nearest(face, frame)].add(face.track_id)
    assert len(ids["astronaut"]) == 1 and len(ids["hopper"]) == 1
    assert ids["astronaut"] != ids["hopper"]


def test_matrix_maps_landmarks_into_the_crop(hog, two_people):
    spec = CropSpec(96)
    face = FaceFinder(hog, spec).find(two_people[0].image)[0]
    in_crop = transform_points(face.landmarks, face.matrix)
    assert in_crop.min() > 0 and in_crop.max() < 96
    back = transform_points(in_crop, invert_affine(face.matrix))
    assert np.abs(back - face.landmarks).max() < 0.5


def test_max_faces_keeps_the_largest(hog, two_people):
    finder = FaceFinder(hog, detect_every=5, max_faces=1)
    for frame in two_people[:10]:
        faces = finder.find(frame.image)
        assert len(faces) == 1
        larger = max(frame.truth, key=lambda k: np.ptp(frame.truth[k][:, 0]))
        assert _nearest(faces[0], frame) == larger


def test_min_size_drops_small_faces(hog, two_people):
    first = two_people[0]
    sides = {k: float(np.ptp(v[:, 0])) for k, v in first.truth.items()}  # jaw width ~ face size
    cut = (sides["astronaut"] + sides["hopper"]) / 2
    big = max(sides, key=sides.get)
    faces = FaceFinder(hog, min_size=cut * 0.9).find(first.image)
    assert [_nearest(f, first) for f in faces] == [big]


def test_reference_keeps_only_that_person(hog, two_people):
    ref_frame = synth.clip(1, second=True)[0]
    ref = face_descriptors(ref_frame.image, ref_frame.truth["hopper"][None])
    finder = FaceFinder(hog, detect_every=5, identity=IdentityFilter(ref), descriptors=True)
    found = 0
    for frame in two_people:
        for face in finder.find(frame.image, frame.timestamp):
            assert _nearest(face, frame) == "hopper"
            assert face.descriptor is not None and face.descriptor.shape == (128,)
            found += 1
    assert found == sum("hopper" in f.truth for f in two_people)


def test_smoothing_reduces_jitter_of_a_still_face(hog):
    rng = np.random.default_rng(0)
    still = synth.clip(1)[0].image
    frames = [
        np.clip(still.astype(np.int16) + rng.integers(-12, 13, still.shape), 0, 255).astype(
            np.uint8
        )
        for _ in range(20)
    ]
    jitter = {}
    for name, smoother in (("raw", None), ("smooth", LandmarkSmoother(fps=30))):
        finder = FaceFinder(hog, detect_every=1, smoother=smoother)
        lms = [finder.find(f, i / 30)[0].landmarks for i, f in enumerate(frames)]
        jitter[name] = np.mean([np.abs(b - a).mean() for a, b in itertools.pairwise(lms)])
    assert jitter["smooth"] < 0.6 * jitter["raw"]

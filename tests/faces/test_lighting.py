"""Normalised views for the detector: faces found in dark footage, crops cut from the frame."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from faceswap.errors import FaceswapError
from faceswap.faces.detectors import create_detector
from faceswap.faces.finder import FaceFinder
from faceswap.faces.lighting import NORMALISERS, NormalisingDetector, with_normalisation
from tests.media import Scene

#: Night: the test scene at 5 % of its brightness, with a little sensor noise.
DARK = 0.05
#: A backlit face: at 7 % of its brightness against the bright background.
SHADE = 0.07


def _dark(image: np.ndarray, seed: int) -> np.ndarray:
    noise = np.random.default_rng(seed).normal(0, 1.0, image.shape)
    return np.clip(image.astype(np.float32) * DARK + noise, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def hog():
    return create_detector("dlib-hog")


@pytest.mark.parametrize("mode", NORMALISERS.names())
def test_every_mode_keeps_the_picture_shape(mode: str) -> None:
    image = _dark(Scene(frames=1).frame(0), 0)
    out = NORMALISERS.get(mode)(image)
    assert out.shape == image.shape and out.dtype == np.uint8
    if mode == "none":
        assert out is image
    else:  # the luma spread out: far more contrast than the night scene has
        grey = [cv2.cvtColor(x, cv2.COLOR_RGB2GRAY).std() for x in (image, out)]
        assert grey[1] > 1.5 * grey[0]


def test_unknown_modes_list_the_valid_ones(hog) -> None:
    with pytest.raises(FaceswapError, match="choose from clahe, hist, mean, none"):
        with_normalisation(hog, "gamma")
    assert with_normalisation(hog, "none") is hog


def _error(landmarks: np.ndarray, truth: np.ndarray) -> float:
    return float(np.abs(landmarks - truth).mean() / np.linalg.norm(truth[45] - truth[36]))


def _backlit(scene: Scene, i: int) -> np.ndarray:
    """Frame ``i`` with the face in shadow (:data:`SHADE`) against a bright background."""
    image, face = scene.frame(i).astype(np.float32), scene.faces(i)[0]
    shade = np.zeros(image.shape[:2], np.float32)
    radius = 1.1 * face.height
    cv2.circle(shade, (int(face.center[0]), int(face.center[1])), int(radius), 1.0, -1)
    shade = cv2.GaussianBlur(shade, (0, 0), radius / 4)[..., None]
    lit = image * (1 - shade) + image * SHADE * shade
    return np.clip(lit + np.random.default_rng(i).normal(0, 1.0, image.shape), 0, 255).astype(
        np.uint8
    )


def test_faces_of_a_dark_shot_are_found_and_fitted_with_mean(hog) -> None:
    scene = Scene(frames=8)
    plain = FaceFinder(hog, detect_every=1)
    evened = FaceFinder(with_normalisation(hog, "mean"), detect_every=1)
    for i in range(scene.frames):
        frame, truth = _dark(scene.frame(i), i), scene.faces(i)[0].landmarks
        assert not plain.find(frame)  # the frame as it is: too dark for the detector
        faces = evened.find(frame)
        assert len(faces) == 1, i
        assert _error(faces[0].landmarks, truth) < 0.03, i


def test_a_backlit_face_needs_a_local_normalisation(hog) -> None:
    scene = Scene(frames=8)
    found = {}
    for mode in ("none", "mean", "clahe"):
        finder = FaceFinder(with_normalisation(hog, mode), detect_every=1)
        hits = [finder.find(_backlit(scene, i)) for i in range(scene.frames)]
        found[mode] = sum(bool(h) for h in hits)
        for i, faces in enumerate(hits):
            if faces:
                assert _error(faces[0].landmarks, scene.faces(i)[0].landmarks) < 0.06
    # A global stretch is ruled by the bright background; tiles see the face.
    assert found["none"] == found["mean"] == 0 and found["clahe"] >= 5


def test_tracking_normalises_each_frame_once(hog) -> None:
    detector = with_normalisation(hog, "mean")
    assert isinstance(detector, NormalisingDetector)
    calls = []
    normalise = detector.normalise

    def counted(image: np.ndarray) -> np.ndarray:
        calls.append(image.shape)
        return normalise(image)

    detector.normalise = counted  # type: ignore[method-assign]
    finder = FaceFinder(detector, detect_every=5)
    scene = Scene(frames=6)
    for i in range(scene.frames):
        assert finder.find(_dark(scene.frame(i), i))
    # Detection and the tracked fits share one view of each frame (a search near a face
    # that moved fast looks at a crop of its own).
    assert calls.count((scene.height, scene.width, 3)) == scene.frames


def test_extract_normalise_cuts_crops_from_the_frame_as_it_is(tmp_path: Path) -> None:
    from faceswap.extract import ExtractConfig, run_extract
    from faceswap.faces.alignments import load_alignments

    scene = Scene(frames=4)
    folder = tmp_path / "night"
    folder.mkdir()
    for i in range(scene.frames):
        cv2.imwrite(
            str(folder / f"n{i}.png"), cv2.cvtColor(_dark(scene.frame(i), i), cv2.COLOR_RGB2BGR)
        )

    def extract(out: str, **kw: object):
        return run_extract(ExtractConfig(input=folder, output=tmp_path / out, detector="dlib-hog",
                                         size=64, progress=False, **kw))  # fmt: skip

    with pytest.raises(FaceswapError, match=r"no face found in 4 frames.* --normalise mean"):
        extract("plain")
    # The night is one shot: tracked as a sequence, the face is followed through a frame
    # where the detector alone misses it.
    assert extract("evened", normalise="mean", sequence=True).faces == 4
    al = load_alignments(tmp_path / "evened")
    assert al.extra["normalise"] == "mean"
    for frame in al.frames:
        crop = cv2.imread(str(tmp_path / "evened" / frame.faces[0].crop_file))
        assert crop.mean() < 20  # the night as it was shot, not the view the detector saw

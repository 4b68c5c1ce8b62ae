"""Re-feed: landmarks averaged over fits in moved boxes shimmer less on a still face."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from faceswap.errors import FaceswapError
from faceswap.faces.detectors import create_detector
from faceswap.faces.finder import build_detector
from faceswap.faces.lighting import NormalisingDetector
from faceswap.faces.refeed import RefeedingDetector, with_refeed
from faceswap.faces.rotation import RotatingDetector
from tests.media import Scene


@pytest.fixture(scope="module")
def hog():
    return create_detector("dlib-hog")


def _noisy_stills(n: int) -> tuple[list[np.ndarray], np.ndarray]:
    """``n`` copies of one frame, each with its own sensor noise, and the true landmarks."""
    scene = Scene(frames=1)
    base = scene.frame(0).astype(np.float32)
    rng = np.random.default_rng(0)
    frames = [np.clip(base + rng.normal(0, 3, base.shape), 0, 255).astype(np.uint8)
              for _ in range(n)]  # fmt: skip
    return frames, scene.faces(0)[0].landmarks


def test_refed_landmarks_shimmer_less_on_a_still_face(hog) -> None:
    frames, truth = _noisy_stills(16)
    measured = {}
    for n in (0, 8):
        detector = with_refeed(hog, n)
        fits = np.stack([detector.refit(frame, truth) for frame in frames])
        shimmer = float(np.abs(np.diff(fits, axis=0)).mean())
        measured[n] = (shimmer, float(np.abs(fits - truth).mean()))
    assert measured[8][0] < 0.75 * measured[0][0], measured
    assert measured[8][1] <= measured[0][1], measured  # and no further from the truth


def test_refeed_is_repeatable_and_detects_as_the_backend_does(hog) -> None:
    frames, truth = _noisy_stills(1)
    refed = RefeedingDetector(hog, 4)
    first, again = refed.detect(frames[0]), refed.detect(frames[0])
    assert np.array_equal(first.landmarks, again.landmarks)
    plain = hog.detect(frames[0])
    assert np.array_equal(first.boxes, plain.boxes) and len(first) == 1
    assert np.abs(first.landmarks[0] - truth).mean() < 1.0
    assert with_refeed(hog, 0) is hog


def test_a_stages_detector_stacks_its_views() -> None:
    detector = build_detector("dlib-hog", normalise="mean", refeed=2, rotate=(90.0,))
    assert isinstance(detector, RotatingDetector) and detector.name == "dlib-hog"
    assert isinstance(detector.inner, NormalisingDetector)
    assert isinstance(detector.inner.inner, RefeedingDetector)
    assert build_detector("dlib-hog").__class__.__name__ == "DlibHogDetector"


def test_extract_records_the_refeed_and_checks_it(tmp_path: Path) -> None:
    from faceswap.extract import ExtractConfig, run_extract
    from faceswap.faces.alignments import load_alignments
    from tests.media import make_image_folder

    photos = make_image_folder(tmp_path / "photos", 2)
    out = tmp_path / "faces"
    run_extract(ExtractConfig(input=photos.path, output=out, detector="dlib-hog", size=64,
                              refeed=4, progress=False))  # fmt: skip
    al = load_alignments(out)
    assert al.extra["refeed"] == 4 and al.face_count == 2
    with pytest.raises(FaceswapError, match="--refeed must be in 0-64"):
        ExtractConfig(input=photos.path, output=out, refeed=100)

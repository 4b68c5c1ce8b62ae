"""Detector backends: registry, dlib fits on a real portrait, auto choice, fan failure."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from faceswap.errors import FaceswapError
from faceswap.faces import detectors
from faceswap.faces.detectors import DETECTORS, backend_status, create_detector
from tests.faces import synth


def _frame(scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    frame = synth.clip(1)[0]
    img = cv2.resize(frame.image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    return img, frame.truth["astronaut"] * scale


def test_registry_names_and_unknown_name() -> None:
    assert {"dlib-hog", "dlib-cnn", "fan"} <= set(DETECTORS.names())
    with pytest.raises(FaceswapError, match="unknown detector 'mtcnn'; choose from dlib-cnn"):
        create_detector("mtcnn")


def test_hog_finds_the_face_and_its_landmarks() -> None:
    img, truth = _frame()
    found = create_detector("dlib-hog").detect(img)
    assert len(found) == 1
    assert found.boxes.shape == (1, 4) and found.boxes.dtype == np.float32
    assert found.landmarks.shape == (1, 68, 2) and found.landmarks.dtype == np.float32
    eye_dist = np.linalg.norm(truth[45] - truth[36])
    assert np.abs(found.landmarks[0] - truth).mean() < 0.1 * eye_dist
    x0, y0, x1, y1 = found.boxes[0]
    nose = truth[30]
    assert x0 < nose[0] < x1 and y0 < nose[1] < y1


def test_min_size_downscales_but_still_finds_big_faces() -> None:
    img, truth = _frame(scale=1.6)  # a face of about 120 px
    det = create_detector("dlib-hog", min_size=110)
    assert det.scale < 1.0 and det.upsample == 0
    found = det.detect(img)
    assert len(found) == 1
    assert np.abs(found.landmarks[0] - truth).mean() < 4.0
    # The same face is below a larger minimum size, so it is not searched for.
    assert len(create_detector("dlib-hog", min_size=300).detect(img)) == 0


def test_small_faces_need_upsampling() -> None:
    img, _ = _frame(scale=0.5)  # a face of about 40 px
    assert create_detector("dlib-hog", min_size=36).upsample >= 1
    assert len(create_detector("dlib-hog", min_size=36).detect(img)) == 1


def test_landmarks_refit_inside_a_box_from_landmarks() -> None:
    img, truth = _frame()
    det = create_detector("dlib-hog")
    box = det.box_from_landmarks(truth + np.float32([4.0, -3.0]))  # a slightly wrong box
    refit = det.landmarks(img, box[None])
    assert refit.shape == (1, 68, 2)
    assert np.abs(refit[0] - truth).mean() < 2.5


def test_no_face_in_a_blank_frame() -> None:
    found = create_detector("dlib-hog").detect(np.full((120, 160, 3), 90, np.uint8))
    assert len(found) == 0 and found.landmarks.shape == (0, 68, 2)


@pytest.mark.slow
def test_cnn_finds_the_face() -> None:
    img, truth = _frame()
    found = create_detector("dlib-cnn").detect(img)
    assert len(found) == 1
    assert np.abs(found.landmarks[0] - truth).mean() < 3.0


def _offline_hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import torch

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    monkeypatch.setattr(detectors, "host_reachable", lambda url, timeout=2.0: False)


def test_fan_without_weights_or_network_says_why_and_what_to_do(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _offline_hub(monkeypatch, tmp_path)
    with pytest.raises(FaceswapError, match=r"cannot be reached.*--detector dlib-hog"):
        create_detector("fan")


def test_auto_falls_back_to_hog_and_says_why(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _offline_hub(monkeypatch, tmp_path)
    det = create_detector("auto")
    assert det.name == "dlib-hog"
    assert "fan unavailable" in det.reason


def test_auto_prefers_fan_when_weights_are_cached(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _offline_hub(monkeypatch, tmp_path)
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    for url in detectors._fan_weight_urls().values():
        (folder / url.rsplit("/", 1)[-1]).write_bytes(b"x")
    assert detectors.choose_auto()[0] == "fan"
    assert detectors.fan_missing_weights() == []


def test_backend_status_for_doctor(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _offline_hub(monkeypatch, tmp_path)
    status = {s.name: s for s in backend_status()}
    assert status["dlib-hog"].usable and "non-commercial" in status["dlib-hog"].reason
    assert not status["fan"].usable and "cannot be reached" in status["fan"].reason
    assert "dlib-hog" in status["auto"].reason


def test_host_reachable_is_false_for_a_closed_port() -> None:
    assert not detectors.host_reachable("http://127.0.0.1:9/", timeout=0.5)

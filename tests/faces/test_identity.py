"""dlib identity descriptors and the reference-person filter."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from faceswap.errors import FaceswapError
from faceswap.faces.detectors import create_detector
from faceswap.faces.identity import IdentityFilter, face_descriptors
from tests.faces import synth


def test_same_person_is_near_and_others_far(tmp_path: Path) -> None:
    frames = synth.clip(2, second=True)
    img = frames[0].image
    truth = frames[0].truth
    desc = face_descriptors(img, np.stack([truth["astronaut"], truth["hopper"]]))
    assert desc.shape == (2, 128) and desc.dtype == np.float32
    # The astronaut again, at another scale and light, in the last frame of a longer clip.
    later = synth.clip(12, second=True)[-1]
    again = face_descriptors(later.image, later.truth["astronaut"][None])
    filt = IdentityFilter(desc[:1], threshold=0.6)
    assert filt.matches(again)[0]
    assert not filt.matches(desc[1:])[0]
    assert filt.distances(desc[1:])[0] > filt.distances(again)[0] + 0.2


def test_filter_from_reference_photos(tmp_path: Path) -> None:
    ref = tmp_path / "ref.png"
    cv2.imwrite(str(ref), cv2.cvtColor(synth.portrait("hopper"), cv2.COLOR_RGB2BGR))
    det = create_detector("dlib-hog")
    filt = IdentityFilter.from_photos([ref], det)
    frame = synth.clip(1, second=True)[0]
    both = np.stack([frame.truth["astronaut"], frame.truth["hopper"]])
    assert filt.matches(face_descriptors(frame.image, both)).tolist() == [False, True]


def test_reference_photo_problems(tmp_path: Path) -> None:
    det = create_detector("dlib-hog")
    with pytest.raises(FaceswapError, match="no such reference photo"):
        IdentityFilter.from_photos([tmp_path / "missing.png"], det)
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((100, 100, 3), 128, np.uint8))
    with pytest.raises(FaceswapError, match="no face found in the reference photo"):
        IdentityFilter.from_photos([blank], det)
    with pytest.raises(FaceswapError, match="ref-threshold"):
        IdentityFilter(np.zeros((1, 128)), threshold=0)


def test_excluded_people_are_left_out(tmp_path: Path) -> None:
    ref = tmp_path / "hopper.png"
    cv2.imwrite(str(ref), cv2.cvtColor(synth.portrait("hopper"), cv2.COLOR_RGB2BGR))
    det = create_detector("dlib-hog")
    frame = synth.clip(1, second=True)[0]
    both = face_descriptors(
        frame.image, np.stack([frame.truth["astronaut"], frame.truth["hopper"]])
    )
    # --not-ref alone: everyone but the excluded person.
    filt = IdentityFilter.from_photos([], det, exclude=[ref])
    assert filt.matches(both).tolist() == [True, False]
    with pytest.raises(FaceswapError, match=r"no such reference photo; check the --not-ref"):
        IdentityFilter.from_photos([], det, exclude=[tmp_path / "missing.png"])


def test_with_both_the_nearer_side_wins() -> None:
    rng = np.random.default_rng(0)
    wanted, other = rng.normal(size=(2, 128)).astype(np.float32) * 0.03
    direction = (other - wanted) / np.linalg.norm(other - wanted)
    other = wanted + direction * 0.5  # two look-alikes, both within the 0.6 threshold
    filt = IdentityFilter(wanted[None], 0.6, exclude=other[None])
    near_wanted = wanted + direction * 0.2
    near_other = wanted + direction * 0.4
    far = wanted + direction * 0.9
    assert filt.matches(np.stack([near_wanted, near_other, far])).tolist() == [True, False, False]
    # Without the exclusion both look-alikes would count as the wanted person.
    plain = IdentityFilter(wanted[None], 0.6)
    assert plain.matches(np.stack([near_wanted, near_other])).tolist() == [True, True]
    with pytest.raises(FaceswapError, match="pass at least one --ref"):
        IdentityFilter(np.zeros((0, 128)), 0.6, exclude=np.zeros((0, 128)))

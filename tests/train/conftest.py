"""Fixtures: real aligned faces (public-domain photos) in the extract output format."""

from __future__ import annotations

import dataclasses
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest

from faceswap.faces.align import CropSpec, alignment_matrix, warp_to_crop
from faceswap.faces.alignments import Alignments, FaceRecord, FrameRecord, save_alignments

CROP = 64
N_FACES = 10


def _landmarks(image: np.ndarray) -> np.ndarray:
    """68 dlib landmarks of the most confident face in an RGB image."""
    import importlib.util

    import dlib

    # Importing face_recognition_models needs pkg_resources; find its folder without it.
    spec = importlib.util.find_spec("face_recognition_models")
    assert spec is not None and spec.origin is not None
    model = Path(spec.origin).parent / "models"
    predictor = dlib.shape_predictor(str(model / "shape_predictor_68_face_landmarks.dat"))
    boxes, scores, _ = dlib.get_frontal_face_detector().run(image, 1)
    box = boxes[int(np.argmax(scores))]
    shape = predictor(image, box)
    return np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float32)


def _photo(name: str) -> np.ndarray:
    if name == "astronaut":
        from skimage.data import astronaut

        return astronaut()
    import matplotlib.cbook

    path = matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def write_face_folder(
    folder: Path, photo: np.ndarray, landmarks: np.ndarray, seed: int, n: int = N_FACES
) -> Path:
    """Aligned crops of one photo with small random pose/lighting changes + alignments.json."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    spec = CropSpec(size=CROP, coverage=0.8, centering="face")
    h, w = photo.shape[:2]
    frames = []
    centre = landmarks.mean(axis=0)
    for i in range(n):
        # Move the landmarks a little (rotation, scale, jitter) so the crops differ like
        # frames of a video; the photo is warped by the same similarity transform.
        angle = rng.uniform(-8, 8)
        scale = rng.uniform(0.95, 1.05)
        move = cv2.getRotationMatrix2D(tuple(map(float, centre)), angle, scale)
        move[:, 2] += rng.uniform(-3, 3, size=2)
        frame = cv2.warpAffine(photo, move, (w, h), borderMode=cv2.BORDER_REFLECT)
        frame = np.clip(frame.astype(np.float32) * rng.uniform(0.85, 1.15), 0, 255).astype(np.uint8)
        pts = (landmarks @ move[:, :2].T + move[:, 2]).astype(np.float32)
        pts += rng.normal(0, 0.5, size=pts.shape).astype(np.float32)
        matrix = alignment_matrix(pts, spec)
        crop = warp_to_crop(frame, matrix, CROP)
        name = f"frame_{i:06d}_0.png"
        cv2.imwrite(str(folder / name), cv2.cvtColor(crop, cv2.COLOR_RGB2BGR))
        x0, y0 = pts.min(axis=0)
        x1, y1 = pts.max(axis=0)
        face = FaceRecord(
            box=np.array([x0, y0, x1, y1], dtype=np.float32),
            score=1.0,
            landmarks=pts,
            matrix=matrix,
            crop_file=name,
        )
        frames.append(FrameRecord(index=i, timestamp=i / 25, faces=(face,)))
    save_alignments(
        folder / "alignments.json",
        Alignments(
            source=f"{folder.name}.mp4",
            frame_count=n,
            fps=Fraction(25),
            width=w,
            height=h,
            crop=spec,
            detector="dlib-hog",
            frames=frames,
        ),
    )
    return folder


@pytest.fixture(scope="session")
def face_dirs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(faces A, faces B): 10 aligned 64 px crops each of two different people."""
    root = tmp_path_factory.mktemp("faces")
    out = []
    for side, (name, seed) in zip("ab", (("astronaut", 1), ("grace", 2)), strict=True):
        photo = _photo(name)
        out.append(write_face_folder(root / side, photo, _landmarks(photo), seed))
    return out[0], out[1]


def tiny_model_config(resolution: int = 32, learned_mask: bool = False):
    """A few-channel model of the ``tiny`` preset for fast CPU tests."""
    from faceswap.nets import load_preset, scaled

    return dataclasses.replace(
        scaled(load_preset("tiny"), 1 / 4, resolution=resolution),
        name="tiny",
        learned_mask=learned_mask,
    )

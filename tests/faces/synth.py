"""In-memory test frames: public-domain portraits moved, scaled, turned and re-lit.

Ground-truth landmarks come from a dlib fit on the full-resolution portrait, carried through
the same transform that places the portrait in each frame.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np


@functools.cache
def portrait(name: str) -> np.ndarray:
    """RGB uint8 portrait: ``astronaut`` (skimage) or ``hopper`` (matplotlib)."""
    if name == "astronaut":
        import skimage.data

        return skimage.data.astronaut()[:300, 100:400].copy()
    import matplotlib.cbook

    path = matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    bgr = cv2.imread(str(path))
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)[100:400, 120:420].copy()


@functools.cache
def portrait_landmarks(name: str) -> np.ndarray:
    """(68, 2) dlib landmarks of the portrait's face (upsampled fit for accuracy)."""
    from faceswap.faces.detectors import create_detector

    img = portrait(name)
    big = cv2.resize(img, None, fx=2, fy=2, interpolation=cv2.INTER_CUBIC)
    found = create_detector("dlib-hog").detect(big)
    assert len(found) >= 1, f"no face in portrait {name}"
    biggest = int(np.argmax(found.boxes[:, 2] - found.boxes[:, 0]))
    return (found.landmarks[biggest] / 2.0).astype(np.float32)


@dataclass
class SynthFrame:
    image: np.ndarray
    truth: dict[str, np.ndarray]  # portrait name -> (68, 2) true landmarks in this frame
    timestamp: float


def _place(name: str, canvas: np.ndarray, centre, scale: float, angle: float, gain: float):
    img = portrait(name)
    h, w = img.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, scale)
    m[:, 2] += np.asarray(centre) - np.array([w / 2, h / 2])
    src = np.clip(img.astype(np.float32) * gain, 0, 255).astype(np.uint8)
    warped = cv2.warpAffine(src, m, (canvas.shape[1], canvas.shape[0]))
    mask = cv2.warpAffine(np.full((h, w), 255, np.uint8), m, (canvas.shape[1], canvas.shape[0]))
    canvas[mask > 127] = warped[mask > 127]
    lm = portrait_landmarks(name)
    return (lm @ m[:, :2].T + m[:, 2]).astype(np.float32)


def clip(
    n: int = 30,
    size: tuple[int, int] = (360, 640),
    *,
    second: bool = False,
    blank: tuple[int, ...] = (),
    fps: float = 30.0,
    seed: int = 0,
) -> list[SynthFrame]:
    """``n`` frames of the astronaut moving, growing, tilting and re-lit over a textured
    background; with ``second`` Grace Hopper stands on the other side; ``blank`` frame
    indices show no face."""
    rng = np.random.default_rng(seed)
    hh, ww = size
    yy, xx = np.mgrid[0:hh, 0:ww]
    base = np.stack([(xx * 0.2) % 255, (yy * 0.3) % 255, (xx + yy) * 0.1 % 255], -1)
    base = (base * 0.5 + 60).astype(np.uint8)
    frames = []
    for i in range(n):
        u = i / max(n - 1, 1)
        canvas = base.copy()
        noise = rng.integers(0, 6, canvas.shape, dtype=np.uint8)
        canvas = cv2.add(canvas, noise)
        truth: dict[str, np.ndarray] = {}
        if i not in blank:
            truth["astronaut"] = _place(
                "astronaut",
                canvas,
                centre=(ww * (0.3 + 0.15 * u), hh * (0.5 + 0.05 * np.sin(6 * u))),
                scale=0.9 + 0.3 * u,
                angle=8 * np.sin(4 * u),
                gain=1.0 - 0.35 * np.sin(3 * u) ** 2,
            )
            if second:
                truth["hopper"] = _place(
                    "hopper", canvas, centre=(ww * 0.8, hh * 0.5), scale=0.8, angle=0.0, gain=1.0
                )
        frames.append(SynthFrame(canvas, truth, i / fps))
    return frames

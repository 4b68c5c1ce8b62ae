"""Evening out the picture the detector and landmark model see (dark, flat or harsh footage).

Night scenes and low-key film lighting leave faces a few code values from black, where
dlib's HOG detector finds nothing (the test face at 8 % of its brightness: lost in every
frame). A normalisation of the luma, applied only to the copy the detector and the landmark
model look at, brings them back; the crops, identities and everything written are cut from
the frame as it is. Modes (``NORMALISERS`` registry, faceswap's extract normalisation):

``none``
    the frame as it is.
``clahe``
    contrast-limited adaptive histogram equalisation of the luma (8x8 tiles): local
    contrast in dark and bright parts alike; the best all-rounder.
``hist``
    global histogram equalisation of the luma.
``mean``
    the luma shifted and stretched to a mean of 128 and a spread of 48 code values.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from faceswap.faces.detectors import Detections, Detector, DetectorWrapper
from faceswap.registry import Registry

Normaliser = Callable[[np.ndarray], np.ndarray]
NORMALISERS: Registry[Normaliser] = Registry("normalisation")


def _on_luma(image: np.ndarray, change: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """``image`` (RGB uint8) with ``change`` applied to its luma, colours kept."""
    lab = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2LAB)
    lab[..., 0] = change(np.ascontiguousarray(lab[..., 0]))
    return cv2.cvtColor(lab, cv2.COLOR_LAB2RGB)


@NORMALISERS.register("none")
def no_normalisation(image: np.ndarray) -> np.ndarray:
    return image


@NORMALISERS.register("clahe")
def clahe(image: np.ndarray) -> np.ndarray:
    equaliser = cv2.createCLAHE(clipLimit=2.0, tileGridSize=(8, 8))
    return _on_luma(image, equaliser.apply)


@NORMALISERS.register("hist")
def histogram(image: np.ndarray) -> np.ndarray:
    return _on_luma(image, cv2.equalizeHist)


@NORMALISERS.register("mean")
def mean_and_spread(image: np.ndarray) -> np.ndarray:
    def stretch(luma: np.ndarray) -> np.ndarray:
        values = luma.astype(np.float32)
        spread = max(float(values.std()), 1.0)
        return np.clip((values - values.mean()) * (48.0 / spread) + 128.0, 0, 255).astype(np.uint8)

    return _on_luma(image, stretch)


class NormalisingDetector(DetectorWrapper):
    """A detector that looks at a normalised copy of each image (see the module docstring).

    Args:
        inner: the backend doing the work.
        mode: a :data:`NORMALISERS` name.
    """

    def __init__(self, inner: Detector, mode: str) -> None:
        super().__init__(inner)
        self.mode = mode
        self.normalise = NORMALISERS.get(mode)  # unknown names fail listing the valid ones
        self._seen: np.ndarray | None = None
        self._normalised: np.ndarray | None = None

    def _view(self, image: np.ndarray) -> np.ndarray:
        # Tracking asks several times a frame about the same frame: normalise it once.
        if image is not self._seen:
            eight_bit = image if image.dtype == np.uint8 else (image >> 8).astype(np.uint8)
            self._seen, self._normalised = image, self.normalise(eight_bit)
        assert self._normalised is not None
        return self._normalised

    def detect(self, image: np.ndarray) -> Detections:
        return self.inner.detect(self._view(image))

    def landmarks(self, image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        return self.inner.landmarks(self._view(image), boxes)

    def refit(self, image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        return self.inner.refit(self._view(image), landmarks)


def with_normalisation(detector: Detector, mode: str) -> Detector:
    """``detector`` as it is for ``none``, else wrapped in :class:`NormalisingDetector`."""
    NORMALISERS.get(mode)
    return detector if mode == "none" else NormalisingDetector(detector, mode)

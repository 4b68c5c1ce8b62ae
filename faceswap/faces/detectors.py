"""Face detector backends, each giving boxes, scores and 68-point landmarks.

Backends (``DETECTORS`` registry):

``dlib-hog``
    dlib's HOG + linear SVM frontal detector and its 68-point shape predictor (offline, CPU,
    fast). Faces smaller than about 80 px need upsampling; larger minimum sizes let it run on
    a downscaled frame, which is what makes it fast.
``dlib-cnn``
    dlib's MMOD CNN detector (more poses, slower on a CPU) with the same shape predictor.
``fan``
    face-alignment's S3FD detector and 2DFAN-4 landmarks (most accurate, torch; GPU advised).
    Its weights download on first use into the torch hub cache.
``auto``
    ``fan`` when its weights are cached or the download host answers within 2 s, else
    ``dlib-hog``; the choice and the reason are logged and recorded in the alignments file.

The dlib models come from the ``face_recognition_models`` package and were trained on the
iBUG 300-W data set, whose licence excludes commercial use.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import socket
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import cv2
import numpy as np

from faceswap.errors import FaceswapError
from faceswap.faces.align import MEAN_FACE, umeyama
from faceswap.registry import Registry

log = logging.getLogger(__name__)

#: Where a dlib HOG box sits on the mean face (centre x, centre y, side in unit coordinates),
#: measured on the test portraits; tracking rebuilds boxes like it from landmarks because the
#: shape predictor was trained on HOG boxes.
_HOG_BOX_ON_MEAN_FACE = (0.5, 0.47, 1.2)

#: Smallest face (box side in pixels) the HOG detector finds without upsampling.
_HOG_NATIVE_MIN = 80.0


@dataclass(frozen=True)
class BackendStatus:
    """Whether a detector backend can run here, and why (not)."""

    name: str
    usable: bool
    reason: str


@dataclass(frozen=True, eq=False)
class Detections:
    """Faces found in one image.

    Attributes:
        boxes: (N, 4) float32 ``x0, y0, x1, y1`` in image pixels.
        scores: (N,) float32 detector confidence (higher is surer; scale depends on backend).
        landmarks: (N, 68, 2) float32 image pixels.
    """

    boxes: np.ndarray
    scores: np.ndarray
    landmarks: np.ndarray

    def __len__(self) -> int:
        return len(self.boxes)

    @classmethod
    def empty(cls) -> Detections:
        return cls(
            np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, 68, 2), np.float32)
        )

    def select(self, keep: np.ndarray | list[int]) -> Detections:
        """The subset at indices (or boolean mask) ``keep``."""
        keep = np.asarray(keep)
        return Detections(self.boxes[keep], self.scores[keep], self.landmarks[keep])


class Detector(ABC):
    """A face detector with a 68-point landmark model.

    Attributes:
        name: registry name of the backend (never ``auto``).
        reason: why this backend was chosen (set by :func:`create_detector`).
    """

    name: str = ""
    reason: str = ""

    @abstractmethod
    def detect(self, image: np.ndarray) -> Detections:
        """Find faces in an RGB uint8 HxWx3 image; boxes, scores and landmarks per face."""

    @abstractmethod
    def landmarks(self, image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """Fit 68 landmarks inside each of ``boxes`` (N, 4); returns (N, 68, 2) float32.

        Used for tracking: the box comes from the previous frame's landmarks
        (:meth:`box_from_landmarks`) rather than from the detector.
        """

    def refit(self, image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """68 landmarks fitted again about where ``landmarks`` (68, 2) put the face.

        Tracking calls this with the previous frame's fit moved by the face's motion.
        """
        box = self.box_from_landmarks(landmarks)
        return self.landmarks(image, box[None])[0]

    def box_from_landmarks(self, landmarks: np.ndarray) -> np.ndarray:
        """A box like this backend's detector would draw around a face with ``landmarks``.

        Args:
            landmarks: (68, 2) frame pixels.

        Returns:
            (4,) float32 ``x0, y0, x1, y1``.
        """
        t = umeyama(MEAN_FACE[17:], np.asarray(landmarks, np.float64)[17:])
        cx, cy, side = _HOG_BOX_ON_MEAN_FACE
        centre = t[:2, :2] @ np.array([cx, cy]) + t[:2, 2]
        half = side * float(np.sqrt(abs(np.linalg.det(t[:2, :2])))) / 2
        return np.array(
            [centre[0] - half, centre[1] - half, centre[0] + half, centre[1] + half], np.float32
        )


class DetectorWrapper(Detector):
    """A detector that hands the work to ``inner`` (a backend or another wrapper), changing
    some of it: subclasses override what they change (the views, the turned copies, the
    re-fed fits). Name, reason and the backend's attributes read through."""

    def __init__(self, inner: Detector) -> None:
        self.inner = inner
        self.name = inner.name
        self.reason = inner.reason

    def __getattr__(self, name: str) -> Any:
        inner = self.__dict__.get("inner")
        if inner is None:
            raise AttributeError(name)
        return getattr(inner, name)

    def detect(self, image: np.ndarray) -> Detections:
        return self.inner.detect(image)

    def landmarks(self, image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        return self.inner.landmarks(image, boxes)

    def refit(self, image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        return self.inner.refit(image, landmarks)

    def box_from_landmarks(self, landmarks: np.ndarray) -> np.ndarray:
        return self.inner.box_from_landmarks(landmarks)


DetectorFactory = Callable[..., Detector]
DETECTORS: Registry[DetectorFactory] = Registry("detector")
DETECTOR_CHOICES = ("auto", "dlib-hog", "dlib-cnn", "fan")


# --- dlib -----------------------------------------------------------------------------------


def _import_dlib() -> Any:
    try:
        import dlib
    except ImportError as exc:
        raise FaceswapError(
            f"the dlib backends need dlib, which failed to import ({exc}); "
            "run `pip install dlib-bin` or choose --detector fan"
        ) from None
    return dlib


def dlib_models_dir() -> Path:
    """The ``models`` folder of the face_recognition_models package (never imported)."""
    # Importing the package would import pkg_resources; locating it is enough.
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or spec.origin is None:
        raise FaceswapError(
            "the dlib model files are missing (package face_recognition_models); "
            "run `pip install face-recognition-models` or choose --detector fan"
        )
    return Path(spec.origin).parent / "models"


def _dlib_model(file_name: str) -> str:
    path = dlib_models_dir() / file_name
    if not path.is_file():
        raise FaceswapError(
            f"dlib model {path} is missing; reinstall it with "
            "`pip install --force-reinstall face-recognition-models`"
        )
    return str(path)


@functools.cache
def _shape_predictor() -> Any:
    dlib = _import_dlib()
    return dlib.shape_predictor(_dlib_model("shape_predictor_68_face_landmarks.dat"))


@functools.cache
def _hog() -> Any:
    return _import_dlib().get_frontal_face_detector()


@functools.cache
def _mmod() -> Any:
    dlib = _import_dlib()
    return dlib.cnn_face_detection_model_v1(_dlib_model("mmod_human_face_detector.dat"))


def _to_gray(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        return image
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)


def _plan_scale(min_size: float, native_min: float) -> tuple[float, int]:
    """(resize factor, dlib upsample count) so faces of ``min_size`` px are still found.

    Faces well above the detector's native minimum let it run on a smaller image (faster);
    faces below it need dlib's pyramid upsampling (slower).
    """
    if min_size <= 0:
        min_size = native_min
    if min_size >= native_min:
        return native_min / min_size, 0
    if min_size >= native_min / 2:
        return 1.0, 1
    return 1.0, 2


class _DlibLandmarks(Detector):
    def __init__(self) -> None:
        self._dlib = _import_dlib()
        self._predictor = _shape_predictor()

    def _fit(self, gray: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        out = np.empty((len(boxes), 68, 2), np.float32)
        h, w = gray.shape[:2]
        for i, (x0, y0, x1, y1) in enumerate(np.asarray(boxes, np.float64)):
            # dlib copies the whole image it is given: hand it the face's surroundings only
            # (the predictor never reads far outside the box), which is cheaper and exact.
            mx, my = 0.6 * (x1 - x0), 0.6 * (y1 - y0)
            rx0, ry0 = max(0, int(x0 - mx)), max(0, int(y0 - my))
            rx1, ry1 = min(w, int(x1 + mx) + 1), min(h, int(y1 + my) + 1)
            if rx1 - rx0 < 2 or ry1 - ry0 < 2:  # box off the frame: fit on the whole frame
                rx0 = ry0 = 0
                rx1, ry1 = w, h
            roi = np.ascontiguousarray(gray[ry0:ry1, rx0:rx1])
            rect = self._dlib.rectangle(
                round(x0) - rx0, round(y0) - ry0, round(x1) - rx0, round(y1) - ry0
            )
            shape = self._predictor(roi, rect)
            out[i] = [(p.x + rx0, p.y + ry0) for p in shape.parts()]
        return out

    def landmarks(self, image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        return self._fit(_to_gray(image), boxes)

    def _finish(self, gray: np.ndarray, rects: list[Any], scores: list[float], f: float):
        if not rects:
            return Detections.empty()
        boxes = np.array(
            [[r.left(), r.top(), r.right(), r.bottom()] for r in rects], np.float32
        ) / np.float32(f)
        first = self._fit(gray, boxes)
        # Refit inside the box the landmarks imply: detector boxes come in coarse pyramid
        # steps, and tracking fits in these boxes too, so detected and tracked frames agree
        # (no jump in the crops every time the detector runs).
        refit = np.stack([self.box_from_landmarks(lm) for lm in first])
        return Detections(boxes, np.asarray(scores, np.float32), self._fit(gray, refit))


@DETECTORS.register("dlib-hog")
class DlibHogDetector(_DlibLandmarks):
    """dlib HOG detector + 68-point shape predictor.

    Args:
        min_size: smallest face (box side, frame pixels) to find; 0 means 80 px. Larger values
            run the detector on a downscaled frame, which is much faster.
        threshold: SVM score threshold (dlib's ``adjust_threshold``; raise it for fewer false
            detections).
    """

    name = "dlib-hog"

    def __init__(self, min_size: float = 0, threshold: float = 0.0, **_: Any) -> None:
        super().__init__()
        self._detector = _hog()
        self.scale, self.upsample = _plan_scale(min_size, _HOG_NATIVE_MIN)
        self.threshold = float(threshold)

    def detect(self, image: np.ndarray) -> Detections:
        gray = _to_gray(image)
        small = gray
        if self.scale < 1.0:
            h, w = gray.shape
            small = cv2.resize(
                gray,
                (max(1, round(w * self.scale)), max(1, round(h * self.scale))),
                interpolation=cv2.INTER_AREA,
            )
        f = small.shape[1] / gray.shape[1]
        rects, scores, _ = self._detector.run(small, self.upsample, self.threshold)
        return self._finish(gray, list(rects), list(scores), f)


@DETECTORS.register("dlib-cnn")
class DlibCnnDetector(_DlibLandmarks):
    """dlib MMOD CNN detector + 68-point shape predictor.

    Args:
        min_size: smallest face to find in frame pixels; 0 means 80 px (smaller faces are
            found by upsampling, which is slow on a CPU). Larger values run the CNN on a
            downscaled frame.
    """

    name = "dlib-cnn"

    def __init__(self, min_size: float = 0, **_: Any) -> None:
        super().__init__()
        self._detector = _mmod()
        self.scale, self.upsample = _plan_scale(min_size, _HOG_NATIVE_MIN)

    def detect(self, image: np.ndarray) -> Detections:
        gray = _to_gray(image)
        small = image
        if self.scale < 1.0:
            h, w = image.shape[:2]
            small = cv2.resize(
                image,
                (max(1, round(w * self.scale)), max(1, round(h * self.scale))),
                interpolation=cv2.INTER_AREA,
            )
        f = small.shape[1] / image.shape[1]
        found = self._detector(np.ascontiguousarray(small), self.upsample)
        return self._finish(gray, [d.rect for d in found], [d.confidence for d in found], f)


# --- face-alignment (FAN) -------------------------------------------------------------------


def _fan_weight_urls() -> dict[str, str]:
    from face_alignment.api import models_urls
    from face_alignment.detection.sfd.sfd_detector import models_urls as sfd_urls

    return {"S3FD": sfd_urls["s3fd"], "2DFAN-4": models_urls["2DFAN-4"]}


def _hub_checkpoints() -> Path:
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints"


def fan_missing_weights() -> list[str]:
    """Names of FAN weight files not yet in the torch hub cache (empty when all are there)."""
    folder = _hub_checkpoints()
    return [
        name
        for name, url in _fan_weight_urls().items()
        if not (folder / Path(urlparse(url).path).name).is_file()
    ]


def host_reachable(url: str, timeout: float = 2.0) -> bool:
    """Whether a TCP connection to ``url``'s host opens within ``timeout`` seconds."""
    parts = urlparse(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname or "", port), timeout=timeout):
            return True
    except OSError:
        return False


def _fan_status(check_network: bool = True) -> BackendStatus:
    if importlib.util.find_spec("face_alignment") is None:
        return BackendStatus(
            "fan", False, "face-alignment is not installed; `pip install face-alignment`"
        )
    missing = fan_missing_weights()
    if not missing:
        return BackendStatus("fan", True, f"weights cached in {_hub_checkpoints()}")
    url = next(iter(_fan_weight_urls().values()))
    if check_network and host_reachable(url):
        return BackendStatus(
            "fan", True, f"weights ({', '.join(missing)}) will download on first use"
        )
    return BackendStatus(
        "fan",
        False,
        f"weights {', '.join(missing)} are not in {_hub_checkpoints()} and "
        f"{urlparse(url).hostname} cannot be reached",
    )


@DETECTORS.register("fan")
class FanDetector(Detector):
    """face-alignment: S3FD detector and 2DFAN-4 landmarks.

    Args:
        device: torch device name (``auto``, ``cpu``, ``cuda``, ...).
        min_size: faces with a smaller box side (pixels) are dropped.
        threshold: S3FD confidence threshold in [0, 1].
    """

    name = "fan"

    def __init__(
        self, device: str = "auto", min_size: float = 0, threshold: float = 0.5, **_: Any
    ) -> None:
        status = _fan_status()
        if not status.usable:
            raise FaceswapError(
                f"cannot load the fan detector: {status.reason}; use --detector dlib-hog, "
                "or download the weights once on a machine with internet (run any "
                "`faceswap extract --detector fan`) and copy the torch hub checkpoints folder"
            )
        import face_alignment

        from faceswap.device import resolve_device

        self.device = str(resolve_device(device))
        try:
            self._fa = face_alignment.FaceAlignment(
                face_alignment.LandmarksType.TWO_D,
                device=self.device,
                face_detector="sfd",
                face_detector_kwargs={"filter_threshold": float(threshold)},
                flip_input=False,
                compile=False,
            )
        except (OSError, RuntimeError) as exc:
            raise FaceswapError(
                f"cannot load the fan detector ({str(exc).splitlines()[0]}); "
                "use --detector dlib-hog or clear a damaged download from "
                f"{_hub_checkpoints()} and retry"
            ) from None
        self.min_size = float(min_size)
        # S3FD finds faces from about 20 px; a larger --min-size lets it run on a smaller
        # frame, which is most of its cost.
        self.scale = min(1.0, 40.0 / self.min_size) if self.min_size > 0 else 1.0

    def detect(self, image: np.ndarray) -> Detections:
        small = image
        if self.scale < 1.0:
            h, w = image.shape[:2]
            size = (max(1, round(w * self.scale)), max(1, round(h * self.scale)))
            small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        # face-alignment's S3FD takes RGB and flips it to BGR itself.
        raw = self._fa.face_detector.detect_from_image(np.ascontiguousarray(small))
        if raw is None or len(raw) == 0:
            return Detections.empty()
        raw = np.asarray(raw, np.float32).reshape(-1, 5)
        raw[:, :4] *= np.float32(image.shape[1] / small.shape[1])
        sides = np.minimum(raw[:, 2] - raw[:, 0], raw[:, 3] - raw[:, 1])
        raw = raw[sides >= self.min_size]
        if len(raw) == 0:
            return Detections.empty()
        boxes = raw[:, :4].copy()
        return Detections(boxes, raw[:, 4].copy(), self.landmarks(image, boxes))

    def landmarks(self, image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
        if len(boxes) == 0:
            return np.zeros((0, 68, 2), np.float32)
        # face-alignment does torch item assignment with these numbers: float32 numpy
        # scalars are refused there, Python floats are not.
        faces = [[float(v) for v in b] for b in boxes]
        found = self._fa.get_landmarks_from_image(image, detected_faces=faces)
        out = np.asarray(found, np.float32).reshape(len(boxes), 68, -1)[..., :2]
        return np.ascontiguousarray(out)

    def box_from_landmarks(self, landmarks: np.ndarray) -> np.ndarray:
        # S3FD boxes hug brows to chin; FAN re-centres inside them, so the landmark extent
        # with a margin is a box it fits well in.
        lm = np.asarray(landmarks, np.float32)
        x0, y0 = lm.min(axis=0)
        x1, y1 = lm.max(axis=0)
        return np.array([x0, y0 - 0.1 * (y1 - y0), x1, y1], np.float32)


# --- choosing and status --------------------------------------------------------------------


def choose_auto(fan: BackendStatus | None = None) -> tuple[str, str]:
    """The backend ``auto`` means here, and why: ``(name, reason)``.

    Args:
        fan: the fan backend's status when already known (saves a network check).
    """
    fan = fan if fan is not None else _fan_status()
    if fan.usable:
        return "fan", f"auto: fan ({fan.reason})"
    return "dlib-hog", f"auto: dlib-hog (fan unavailable: {fan.reason})"


def create_detector(name: str = "auto", device: str = "auto", **options: Any) -> Detector:
    """Build a detector by name (``auto``, ``dlib-hog``, ``dlib-cnn``, ``fan``).

    Args:
        name: backend name; ``auto`` picks ``fan`` when usable, else ``dlib-hog``.
        device: torch device for torch backends (``auto``, ``cpu``, ``cuda``...).
        **options: backend options such as ``min_size`` (pixels) and ``threshold``.

    Raises:
        FaceswapError: unknown name, or a backend that cannot load (with the reason and fix).
    """
    if name == "auto":
        name, reason = choose_auto()
        log.info("detector %s", reason)
    else:
        reason = f"chosen: {name}"
    factory = DETECTORS.get(name)  # unknown names fail here, listing the valid ones
    detector = factory(device=device, **options)
    if name == "fan" and getattr(detector, "device", "cpu") == "cpu":
        log.warning(
            "the fan detector runs on the CPU here: expect seconds per frame; "
            "--detector dlib-hog is far faster"
        )
    detector.reason = reason
    return detector


def backend_status() -> list[BackendStatus]:
    """Usability of each backend on this machine, for ``faceswap doctor``."""
    out = []
    for name in ("dlib-hog", "dlib-cnn"):
        try:
            _import_dlib()
            model = "mmod_human_face_detector.dat" if name == "dlib-cnn" else None
            _dlib_model("shape_predictor_68_face_landmarks.dat")
            if model:
                _dlib_model(model)
            out.append(
                BackendStatus(name, True, f"dlib models in {dlib_models_dir()} (non-commercial)")
            )
        except FaceswapError as exc:
            out.append(BackendStatus(name, False, str(exc)))
    fan = _fan_status()
    out.append(fan)
    _, reason = choose_auto(fan)
    out.append(BackendStatus("auto", True, reason))
    return out

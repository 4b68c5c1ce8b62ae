"""Finding and following faces turned in the image plane (a tilted head, a sideways photo).

The detectors and landmark models are trained on upright faces: dlib's HOG detector finds
faces turned up to about 40 degrees, and its landmark fit inside an upright box fails beyond
that. :class:`RotatingDetector` wraps any backend: when the plain detector finds nothing in
an image it looks again in copies turned by each of the given angles (nearest to upright
first, starting with the angle that last found a face) and maps what it finds back; and it
fits landmarks of a turned face in an upright copy of the face's surroundings, so tracking
follows a head as it tilts. Crops come out upright either way: the alignment is a similarity
transform and takes the roll out.

Angles are in degrees clockwise as the face appears in the image (y points down).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from faceswap.errors import FaceswapError
from faceswap.faces.align import FIT_POINTS, MEAN_FACE, umeyama
from faceswap.faces.detectors import Detections, Detector, DetectorWrapper

#: Roll (degrees) up to which landmarks are fitted in the frame as it is: the upright models
#: fit that well, and a warp would only cost time.
UPRIGHT_ROLL = 25.0

#: Turns (degrees) either side of a face found in a turned copy at which it is looked for
#: again, to place its roll in the middle of the detector's tolerance.
SETTLE_OFFSETS = tuple(float(o) for o in range(-60, 61, 15))

#: A face still found this far either side of the roll its landmarks show is within the
#: landmark model's reach of it (dlib's HOG finds faces up to about 40 degrees off upright).
PROBE_OFFSETS = (-25.0, 25.0)


def parse_rotations(text: str | float | int) -> tuple[float, ...]:
    """The angles ``--rotate`` names, nearest to upright first.

    ``"90"`` is a step: 90, -90 and 180 (every multiple of it round the circle); ``"45,-45"``
    (a comma in it) lists exact angles. Angles are folded into (-180, 180].

    Raises:
        FaceswapError: not numbers, a step outside (0, 180], or an angle of 0.
    """
    raw = str(text).strip()
    try:
        values = [float(part) for part in raw.split(",") if part.strip()]
    except ValueError:
        values = []
    if not values:
        raise FaceswapError(
            f"--rotate {raw!r}: give a step in degrees (45 tries 45, -45, 90 ... 180) or a "
            "comma-separated list of angles (e.g. 90,-90)"
        )
    if "," not in raw:
        step = values[0]
        if not 0 < step <= 180:
            raise FaceswapError(f"--rotate {raw}: a step must be in (0, 180] degrees")
        values = [step * k for k in range(1, int(360 / step + 1e-9)) if step * k < 360 - 1e-9]
    folded = []
    for angle in values:
        angle = (angle + 180.0) % 360.0 - 180.0
        angle = 180.0 if angle == -180.0 else angle
        if abs(angle) < 1e-9:
            raise FaceswapError(
                f"--rotate {raw}: 0 degrees is the upright pass, always tried first; leave it out"
            )
        if angle not in folded:
            folded.append(angle)
    return tuple(sorted(folded, key=lambda a: (abs(a), a < 0)))


def as_rotations(value: object) -> tuple[float, ...]:
    """A config's ``rotate`` value as angles: a step or list as text or a number (see
    :func:`parse_rotations`), a sequence of exact angles, or None / "" / 0 for none."""
    if value is None or value == "" or value == 0 or value == ():
        return ()
    if isinstance(value, (list, tuple)):
        if not value:
            return ()
        return parse_rotations(",".join(str(v) for v in value) + ",")
    return parse_rotations(str(value))


def roll_of(landmarks: np.ndarray) -> float:
    """How far a face with ``landmarks`` (68, 2) is turned, degrees clockwise."""
    t = umeyama(MEAN_FACE[FIT_POINTS], np.asarray(landmarks, np.float64)[FIT_POINTS])
    return math.degrees(math.atan2(t[1, 0], t[0, 0]))


def _rotation(degrees: float) -> np.ndarray:
    """2x2 matrix turning upright coordinates ``degrees`` clockwise (y down)."""
    r = math.radians(degrees)
    return np.array([[math.cos(r), -math.sin(r)], [math.sin(r), math.cos(r)]])


def _upright_copy(
    image: np.ndarray, degrees: float, centre: np.ndarray | None = None, side: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``image`` turned ``degrees`` anticlockwise, so a face turned that far stands upright.

    With ``centre`` and ``side``, only the ``side`` x ``side`` square about ``centre``;
    otherwise the whole image on a canvas large enough to hold all of it.

    Returns:
        (copy, rotation, offset): a point ``p`` of the copy is ``(p - offset) @ rotation.T``
        in ``image``.
    """
    rotation = _rotation(degrees)
    h, w = image.shape[:2]
    if centre is None:
        corners = np.array([[0, 0], [w, 0], [0, h], [w, h]], np.float64) @ rotation
        offset = -corners.min(axis=0)
        size = np.ceil(corners.max(axis=0) + offset).astype(int)
    else:
        offset = np.full(2, side / 2.0) - np.asarray(centre, np.float64) @ rotation
        size = np.array([side, side])
    matrix = np.hstack([rotation.T, offset[:, None]])
    copy = cv2.warpAffine(
        image,
        matrix,
        (int(size[0]), int(size[1])),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )
    return copy, rotation, offset


class RotatingDetector(DetectorWrapper):
    """A detector that also finds and fits faces turned in the image plane.

    Args:
        inner: the backend doing the work.
        angles: angles to look at when the upright pass finds nothing (see
            :func:`parse_rotations`); empty keeps only the roll-aware landmark fit.
    """

    def __init__(self, inner: Detector, angles: tuple[float, ...]) -> None:
        super().__init__(inner)
        self.angles = tuple(float(a) for a in angles)
        self.last_angle: float | None = None
        self.rotated_passes = 0

    def detect(self, image: np.ndarray) -> Detections:
        found = self.inner.detect(image)
        if not self.angles:
            return found
        if len(found):
            # Found upright, the face may still be turned as far as the detector allows,
            # beyond what the landmark model fits.
            return self._settle(image, found)
        order = list(self.angles)
        if self.last_angle in order:
            order.remove(self.last_angle)
            order.insert(0, self.last_angle)
        for angle in order:
            self.rotated_passes += 1
            turned, rotation, offset = _upright_copy(image, angle)
            found = self.inner.detect(turned)
            if len(found):
                self.last_angle = angle
                return self._settle(image, self._back(found, rotation, offset))
        return found

    def _settle(self, image: np.ndarray, found: Detections) -> Detections:
        landmarks = []
        for box, lm in zip(found.boxes, found.landmarks, strict=True):
            roll, as_fitted = self._roll_by_tolerance(image, box, lm)
            upright = as_fitted and abs(roll) <= UPRIGHT_ROLL
            landmarks.append(lm if upright else self._fit_turned(image, lm, roll))
        return Detections(found.boxes, found.scores, np.stack(landmarks))

    def _roll_by_tolerance(
        self, image: np.ndarray, box: np.ndarray, lm: np.ndarray
    ) -> tuple[float, bool]:
        """The roll of a face the detector found, from the detector's own tolerance.

        The detector finds a face over a range of rolls about upright (about +-40 degrees for
        dlib's HOG), so the angle that found it can be well off, and the landmark model,
        which only fits within about 25 degrees, cannot tell by how much. The face is looked
        for again in small copies of its surroundings turned either side of the roll its
        landmarks show: found at both :data:`PROBE_OFFSET` turns, that roll is close enough
        (the second value, True); else the middle of the run of :data:`SETTLE_OFFSETS` turns
        at which it is still found is its roll.
        """
        centre = (box[:2] + box[2:]) / 2.0
        side = float(max(box[2] - box[0], box[3] - box[1], 8.0))
        guess = roll_of(lm)
        if all(self._found_at(image, centre, side, guess + o) for o in PROBE_OFFSETS):
            return guess, True
        found_at = [self._found_at(image, centre, side, guess + o) for o in SETTLE_OFFSETS]
        if not any(found_at):
            return guess, False
        # The longest run of consecutive angles that find it.
        best: list[float] = []
        run: list[float] = []
        for offset, hit in zip(SETTLE_OFFSETS, found_at, strict=True):
            run = [*run, offset] if hit else []
            if len(run) > len(best):
                best = run
        return guess + (best[0] + best[-1]) / 2.0, False

    def _found_at(self, image: np.ndarray, centre: np.ndarray, side: float, angle: float) -> bool:
        """Whether the face of box ``side`` about ``centre`` is found turned by ``angle``."""
        copy_side = math.ceil(2.5 * side)
        turned, _, _ = _upright_copy(image, angle, centre, copy_side)
        hits = self.inner.detect(turned)
        middles = (hits.boxes[:, :2] + hits.boxes[:, 2:]) / 2.0
        return bool((np.linalg.norm(middles - copy_side / 2.0, axis=1) < 0.35 * side).any())

    def _fit_turned(self, image: np.ndarray, landmarks: np.ndarray, roll: float) -> np.ndarray:
        """Landmarks fitted in a copy of the face's surroundings turned upright by ``roll``."""
        centre = np.asarray(landmarks, np.float64).mean(axis=0)
        box = self.inner.box_from_landmarks(landmarks)
        side = math.ceil(3.0 * max(box[2] - box[0], box[3] - box[1], 8.0))
        turned, rotation, offset = _upright_copy(image, roll, centre, side)
        upright = np.asarray(landmarks, np.float64) @ rotation + offset
        # The guess, turned upright about its own centre, so the box it implies sits square.
        upright = (upright - upright.mean(axis=0)) @ _rotation(roll_of(upright)) + upright.mean(
            axis=0
        )
        fitted = self.inner.refit(turned, self.inner.refit(turned, upright.astype(np.float32)))
        back = ((fitted.astype(np.float64) - offset) @ rotation.T).astype(np.float32)
        return back

    @staticmethod
    def _back(found: Detections, rotation: np.ndarray, offset: np.ndarray) -> Detections:
        landmarks = (found.landmarks.astype(np.float64) - offset) @ rotation.T
        sizes = found.boxes[:, 2:] - found.boxes[:, :2]
        centres = ((found.boxes[:, :2] + found.boxes[:, 2:]) / 2 - offset) @ rotation.T
        boxes = np.hstack([centres - sizes / 2, centres + sizes / 2])
        return Detections(boxes.astype(np.float32), found.scores, landmarks.astype(np.float32))

    def refit(self, image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        roll = roll_of(landmarks)
        if abs(roll) <= UPRIGHT_ROLL:
            return self.inner.refit(image, landmarks)
        return self._fit_turned(image, landmarks, roll)


def with_rotations(detector: Detector, angles: tuple[float, ...]) -> Detector:
    """``detector`` as it is when ``angles`` is empty, else wrapped in :class:`RotatingDetector`."""
    return RotatingDetector(detector, angles) if angles else detector

"""FaceFinder: detection every N frames, landmark tracking between, identity and smoothing.

Per frame the finder either runs the detector (every ``detect_every`` frames, and on every
frame while it tracks nothing) or tracks: for each face it draws the box its detector would
have drawn around last frame's landmarks (moved by the face's last motion), re-fits the 68
landmarks inside it and checks that the aligned face still looks like the face it started
from (normalised cross-correlation of a small grey crop, which does not care about lighting
changes). A fit that fails the check drops the track and forces a detection on the next
frame, so a face that leaves or is covered is not followed into the background.

Each face keeps a track id while it is followed, so several faces in one shot stay apart.
With an :class:`~faceswap.faces.identity.IdentityFilter` only faces of the reference person
are returned; identity is checked when a track starts and again every few detections.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from faceswap.faces.align import CropSpec, alignment_matrix, warp_to_crop
from faceswap.faces.alignments import FaceRecord
from faceswap.faces.detectors import Detections, Detector, create_detector
from faceswap.faces.identity import IdentityFilter, face_descriptors
from faceswap.faces.lighting import with_normalisation
from faceswap.faces.refeed import with_refeed
from faceswap.faces.rotation import with_rotations
from faceswap.faces.smoothing import LandmarkSmoother

_TEMPLATE = CropSpec(size=32, coverage=1.0, centering="legacy")


def build_detector(
    name: str = "auto",
    device: str = "auto",
    *,
    min_size: float = 0,
    normalise: str = "none",
    refeed: int = 0,
    rotate: tuple[float, ...] = (),
) -> Detector:
    """The detector a stage finds faces with: the backend (see
    :func:`~faceswap.faces.detectors.create_detector`), its landmarks re-fed ``refeed``
    times (:mod:`~faceswap.faces.refeed`), looking at a ``normalise``d view
    (:mod:`~faceswap.faces.lighting`), in copies turned by ``rotate`` where nothing is found
    upright (:mod:`~faceswap.faces.rotation`)."""
    detector = with_refeed(create_detector(name, device, min_size=min_size), refeed)
    return with_rotations(with_normalisation(detector, normalise), rotate)


def detector_for(cfg: Any) -> Detector:
    """:func:`build_detector` with a stage config's ``detector``, ``device``, ``min_size``,
    ``normalise``, ``refeed`` and ``rotate`` (extract's and convert's)."""
    return build_detector(
        cfg.detector,
        cfg.device,
        min_size=cfg.min_size,
        normalise=cfg.normalise,
        refeed=cfg.refeed,
        rotate=cfg.rotate,
    )


@dataclass
class _Track:
    id: int
    landmarks: np.ndarray  # (68, 2) raw (unsmoothed) landmarks of the last frame
    velocity: np.ndarray  # (2,) pixels per frame of the face centre
    box: np.ndarray  # (4,) box reported for the last frame
    score: float
    template: np.ndarray  # (32, 32) float32 normalised grey face at the last detection
    descriptor: np.ndarray | None = None
    wanted: bool = True
    misses: int = 0
    checks: int = 0
    age: int = 0
    extra: dict = field(default_factory=dict)


def _box_side(box: np.ndarray) -> float:
    return float(min(box[2] - box[0], box[3] - box[1]))


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def _template(gray: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    crop = warp_to_crop(gray, alignment_matrix(landmarks, _TEMPLATE), _TEMPLATE.size)
    crop = crop.astype(np.float32)
    crop -= crop.mean()
    return crop / (float(crop.std()) + 1e-3)


class FaceFinder:
    """Stateful per-video face finder (detector + tracker + identity filter + smoothing).

    Args:
        detector: a backend from :func:`~faceswap.faces.detectors.create_detector`.
        crop: geometry used for each face's ``matrix``.
        detect_every: run the detector every N frames and track in between (1 = detect on
            every frame, no tracking; use 1 for unrelated photos).
        min_size: ignore faces whose box side is smaller (pixels).
        max_faces: keep at most this many faces per frame, largest first (0 = all).
        identity: keep only faces matching these reference descriptors.
        smoother: temporal landmark filter applied to the returned landmarks.
        descriptors: attach a 128-D identity descriptor to each returned face.
        track_threshold: lowest template correlation (-1..1) at which a tracked face still
            counts as the same face.
    """

    def __init__(
        self,
        detector: Detector,
        crop: CropSpec | None = None,
        *,
        detect_every: int = 5,
        min_size: float = 0,
        max_faces: int = 0,
        identity: IdentityFilter | None = None,
        smoother: LandmarkSmoother | None = None,
        descriptors: bool = False,
        track_threshold: float = 0.5,
        identity_every: int = 5,
    ) -> None:
        if detect_every < 1:
            raise ValueError("detect_every must be >= 1")
        self.detector = detector
        self.crop = crop or CropSpec()
        self.detect_every = int(detect_every)
        self.min_size = float(min_size)
        self.max_faces = int(max_faces)
        self.identity = identity
        self.smoother = smoother
        self.descriptors = bool(descriptors)
        self.track_threshold = float(track_threshold)
        self.identity_every = max(1, int(identity_every))
        self.last_detected = False
        self.detections_run = 0
        self._tracks: list[_Track] = []
        self._next_id = 0
        self._since_detect = 0

    def reset(self) -> None:
        """Forget all tracks (call between unrelated clips or at a scene cut)."""
        self._tracks = []
        self._since_detect = 0
        if self.smoother is not None:
            self.smoother.reset()

    def find(self, image: np.ndarray, timestamp: float | None = None) -> list[FaceRecord]:
        """Faces in the next frame of the clip, largest first.

        Args:
            image: RGB uint8 HxWx3 frame.
            timestamp: seconds (for smoothing); None means one frame after the last.

        Returns:
            Face records (``crop_file`` empty) with track ids; empty when no (wanted) face.
            :attr:`last_detected` tells whether the detector ran on this frame.
        """
        gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image
        detect = (
            not self._tracks
            or self.detect_every <= 1
            or self._since_detect + 1 >= self.detect_every
        )
        lost: list[_Track] = []
        if not detect:
            lost = self._track(image, gray)
            detect = bool(lost)  # a failed fit means the scene changed: look again now
        if detect:
            self._detect(image, gray, lost)
            self._since_detect = 0
        else:
            self._since_detect += 1
        self.last_detected = detect
        return self._records(image, timestamp)

    # -- detection --------------------------------------------------------------------------

    def _detect(self, image: np.ndarray, gray: np.ndarray, lost: list[_Track]) -> None:
        self.detections_run += 1
        found = self.detector.detect(image)
        if len(found) and self.min_size > 0:
            sides = np.minimum(
                found.boxes[:, 2] - found.boxes[:, 0], found.boxes[:, 3] - found.boxes[:, 1]
            )
            found = found.select(sides >= self.min_size)
        found = self._dedupe(found)
        matched: set[int] = set()
        kept: list[_Track] = []
        order = np.argsort(-(found.boxes[:, 2] - found.boxes[:, 0])) if len(found) else []
        for i in order:
            box, lm = found.boxes[i], found.landmarks[i]
            # Match by overlap with where each track (or one lost this frame) should be now.
            best, best_iou = None, 0.25
            for t in self._tracks + lost:
                if t.id in matched:
                    continue
                overlap = _iou(box, self.detector.box_from_landmarks(t.landmarks + t.velocity))
                if overlap > best_iou:
                    best, best_iou = t, overlap
            if best is None:
                track = _Track(
                    id=self._new_id(),
                    landmarks=lm.copy(),
                    velocity=np.zeros(2),
                    box=box.copy(),
                    score=float(found.scores[i]),
                    template=_template(gray, lm),
                )
                self._check_identity(image, track)
            else:
                matched.add(best.id)
                track = best
                track.velocity = lm.mean(axis=0) - track.landmarks.mean(axis=0)
                track.landmarks, track.box = lm.copy(), box.copy()
                track.score, track.misses = float(found.scores[i]), 0
                track.template = _template(gray, lm)
                track.checks += 1
                if not track.wanted or track.checks % self.identity_every == 0:
                    self._check_identity(image, track)
            kept.append(track)
        # Faces the detector missed this time (a turned head, motion blur) stay while their
        # fit still matches; two misses in a row end them.
        for t in self._tracks:
            if t.id in matched or t.misses >= 1 or t in lost:
                continue
            if self._refit(image, gray, t) and not any(_iou(t.box, k.box) > 0.3 for k in kept):
                t.misses += 1
                kept.append(t)
        self._tracks = self._limit(kept)

    def _dedupe(self, found: Detections) -> Detections:
        if len(found) < 2:
            return found
        order = np.argsort(-found.scores)
        keep: list[int] = []
        for i in order:
            if all(_iou(found.boxes[i], found.boxes[k]) < 0.5 for k in keep):
                keep.append(int(i))
        return found.select(sorted(keep))

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id - 1

    def _check_identity(self, image: np.ndarray, track: _Track) -> None:
        if self.identity is None and not self.descriptors:
            return
        track.descriptor = face_descriptors(image, track.landmarks[None])[0]
        if self.identity is not None:
            track.wanted = bool(self.identity.matches(track.descriptor[None])[0])

    def _limit(self, tracks: list[_Track]) -> list[_Track]:
        if self.max_faces <= 0:
            return tracks
        wanted = sorted((t for t in tracks if t.wanted), key=lambda t: -_box_side(t.box))
        others = [t for t in tracks if not t.wanted]
        # Keep unwanted tracks too (so they are not re-identified every detection), but never
        # let them crowd out the wanted ones.
        return wanted[: self.max_faces] + others[: self.max_faces]

    # -- tracking ---------------------------------------------------------------------------

    def _refit(self, image: np.ndarray, gray: np.ndarray, t: _Track) -> bool:
        predicted = t.landmarks + t.velocity
        lm = self.detector.refit(image, predicted)
        # A second fit about the first converges on faces that moved a lot.
        lm = self.detector.refit(image, lm)
        box = self.detector.box_from_landmarks(lm)
        if not self._plausible(gray, t, lm, box):
            # The face moved or turned faster than the fit can follow: look for it with the
            # detector near where it should be, which costs a fraction of a full detection.
            found = self._local_detect(image, self.detector.box_from_landmarks(predicted))
            if found is None:
                return False
            box, lm, score = found
            if not self._plausible(gray, t, lm, box, relaxed=True):
                return False
            t.score = score
            t.template = _template(gray, lm)
        t.velocity = lm.mean(axis=0) - t.landmarks.mean(axis=0)
        t.landmarks, t.box = lm, box
        return True

    def _plausible(
        self, gray: np.ndarray, t: _Track, lm: np.ndarray, box: np.ndarray, relaxed: bool = False
    ) -> bool:
        if not np.all(np.isfinite(lm)):
            return False
        corr = float((_template(gray, lm) * t.template).mean())
        old_side = _box_side(self.detector.box_from_landmarks(t.landmarks))
        ratio = _box_side(box) / max(old_side, 1.0)
        low = self.track_threshold * (0.5 if relaxed else 1.0)
        return corr >= low and 0.7 < ratio < 1.4

    def _local_detect(
        self, image: np.ndarray, box: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, float] | None:
        h, w = image.shape[:2]
        side = _box_side(box)
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        x0, y0 = max(0, int(cx - 1.5 * side)), max(0, int(cy - 1.5 * side))
        x1, y1 = min(w, int(cx + 1.5 * side)), min(h, int(cy + 1.5 * side))
        if x1 - x0 < 16 or y1 - y0 < 16:
            return None
        found = self.detector.detect(np.ascontiguousarray(image[y0:y1, x0:x1]))
        if len(found) == 0:
            return None
        offset = np.float32([x0, y0])
        centres = (found.boxes[:, :2] + found.boxes[:, 2:]) / 2 + offset
        best = int(np.argmin(np.linalg.norm(centres - np.float32([cx, cy]), axis=1)))
        out_box = found.boxes[best] + np.tile(offset, 2)
        return out_box, found.landmarks[best] + offset, float(found.scores[best])

    def _track(self, image: np.ndarray, gray: np.ndarray) -> list[_Track]:
        """Follow every track into this frame; returns the tracks that were lost."""
        alive, lost = [], []
        for t in self._tracks:
            (alive if self._refit(image, gray, t) else lost).append(t)
        # Two tracks that slid onto one face: keep the older.
        alive.sort(key=lambda t: t.id)
        unique: list[_Track] = []
        for t in alive:
            if all(_iou(t.box, u.box) < 0.5 for u in unique):
                unique.append(t)
        self._tracks = unique
        return lost

    # -- output -----------------------------------------------------------------------------

    def _records(self, image: np.ndarray, timestamp: float | None) -> list[FaceRecord]:
        out = []
        wanted = [t for t in self._tracks if t.wanted]
        wanted.sort(key=lambda t: -_box_side(t.box))
        if self.max_faces > 0:
            wanted = wanted[: self.max_faces]
        for t in wanted:
            t.age += 1
            lm = t.landmarks
            if self.smoother is not None:
                lm = self.smoother.update(t.id, lm, timestamp)
            out.append(
                FaceRecord(
                    box=t.box.astype(np.float32),
                    score=t.score,
                    landmarks=np.asarray(lm, np.float32),
                    matrix=alignment_matrix(lm, self.crop),
                    crop_file="",
                    descriptor=t.descriptor if self.descriptors else None,
                    track_id=t.id,
                )
            )
        return out

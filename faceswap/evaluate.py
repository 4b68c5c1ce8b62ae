"""The evaluate stage: how good is a swap, measured frame by frame against its source.

The figures face-swap papers and reviewers look at, on the faces a detector finds in the
source and in the output (the same frames, matched by box overlap):

* **faces kept**: share of source faces still found as a face in the output (a swap that
  smears a face into mush loses it);
* **identity**: dlib's 128-D descriptor distance of each output face to the source face it
  replaced (A; 0.6 or more: no longer recognisably A) and, with reference photos of B, to the
  nearest of them (below 0.6: recognisably B);
* **expression**: the mean distance between the output's and the source's 68 landmarks, as a
  share of the source's eye distance (the swap should keep A's pose, gaze and mouth);
* **stability**: frame-to-frame motion of the output's landmarks beyond the source's own, as a
  share of the eye distance (jitter of the swapped face);
* **flicker**: frame-to-frame change of the face's mean brightness beyond the source's own,
  in code values of 255 (a colour match that pulses from frame to frame);
* **sharpness**: detail (variance of the Laplacian) inside the output face over the source
  face's (autoencoders blur; 1.0 is as sharp as the plate);
* **background**: PSNR outside the faces (the swap should leave the rest of the frame as it
  was, to within the codec's error).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from faceswap.config import check_frame_limit
from faceswap.errors import FaceswapError

#: Faces in the output count as the source face they overlap this much (box IoU).
MATCH_IOU = 0.3
#: Descriptor distance under which two faces are one person (dlib's threshold).
SAME_PERSON = 0.6


@dataclass(frozen=True)
class EvaluateConfig:
    """Settings of :func:`run_evaluate`.

    Attributes:
        swapped: the converted video or image folder.
        source: the video or image folder it was converted from (same frame count).
        refs_b: photos of B, for the distance to B's identity (optional).
        frames: measure at most this many frames, spread over the video in pairs of
            consecutive frames for stability (0: every frame).
        detector: face detector for both (``dlib-hog``, ``dlib-cnn``, ``fan``, ``auto``).
        device: torch device for torch detectors.
        rotate: also look for faces turned in the picture at these angles (see
            :func:`~faceswap.faces.rotation.parse_rotations`).
    """

    swapped: Path
    source: Path
    refs_b: tuple[Path, ...] = ()
    frames: int = 60
    detector: str = "dlib-hog"
    device: str = "auto"
    rotate: tuple[float, ...] | str = ()

    def __post_init__(self) -> None:
        from faceswap.faces.rotation import as_rotations

        check_frame_limit(self.frames)
        object.__setattr__(self, "rotate", as_rotations(self.rotate))


@dataclass(frozen=True)
class EvaluateResult:
    """The measures of :func:`run_evaluate`; None where nothing could be measured.

    Attributes:
        frames: frames measured.
        source_faces: faces found in the source's measured frames.
        faces_kept: of those, found again in the output.
        distance_to_a: median descriptor distance of output faces to the face they replaced.
        distance_to_b: median distance to the nearest photo of B (with ``refs_b``).
        closer_to_b: share of output faces nearer to B's photos than to their source face.
        landmark_error: median landmark distance, share of the eye distance.
        jitter: median frame-to-frame landmark motion beyond the source's, share of the eye
            distance.
        flicker: median frame-to-frame change of the face's mean luma beyond the source's,
            in code values of 255.
        sharpness: median ratio of output to source detail inside the face.
        background_psnr: PSNR in dB outside the faces, over all measured frames (inf: equal).
    """

    swapped: Path
    source: Path
    frames: int
    source_faces: int
    faces_kept: int
    distance_to_a: float | None
    distance_to_b: float | None
    closer_to_b: float | None
    landmark_error: float | None
    jitter: float | None
    sharpness: float | None
    background_psnr: float | None
    per_frame: tuple[dict[str, float], ...] = field(default=(), repr=False)
    flicker: float | None = None

    @property
    def faces_kept_share(self) -> float | None:
        return self.faces_kept / self.source_faces if self.source_faces else None


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x1 - x0) * max(0.0, y1 - y0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def eye_distance(landmarks: np.ndarray) -> float:
    """Distance between the eye centres of 68 landmarks, in pixels."""
    return float(np.linalg.norm(landmarks[36:42].mean(0) - landmarks[42:48].mean(0)))


def landmark_error(out: np.ndarray, src: np.ndarray) -> float:
    """Mean landmark distance of ``out`` from ``src``, as a share of ``src``'s eye distance."""
    return float(np.linalg.norm(out - src, axis=1).mean() / max(eye_distance(src), 1.0))


def detail(gray: np.ndarray, region: np.ndarray) -> float:
    """Variance of the Laplacian of ``gray`` inside ``region``: how much fine detail it has."""
    lap = cv2.Laplacian(gray, cv2.CV_32F)
    return float(lap[region].var()) if region.any() else 0.0


def background_error(out: np.ndarray, src: np.ndarray, outside: np.ndarray) -> tuple[float, int]:
    """Sum of squared differences (0-255 scale) outside the faces, and how many values."""
    if not outside.any():
        return 0.0, 0
    diff = out[outside].astype(np.float64) - src[outside].astype(np.float64)
    return float((diff * diff).sum()), int(diff.size)


def _selected(count: int, limit: int) -> set[int]:
    """Frame indices to measure: all, or ``limit`` of them as pairs of neighbours."""
    if limit == 0 or count <= limit:
        return set(range(count))
    pairs = max(1, limit // 2)
    starts = np.linspace(0, count - 2, pairs).round().astype(int)
    return {int(i) for s in starts for i in (s, s + 1)}


def _frames(path: Path) -> tuple[int, Iterator[np.ndarray]]:
    from faceswap.io.images import as_8bit, is_image_file, read_image
    from faceswap.io.video import open_source

    if path.is_file() and is_image_file(path):
        return 1, iter([read_image(path)])
    source = open_source(path)
    return source.frame_count, (as_8bit(f.image) for f in source.iter_frames())


def run_evaluate(cfg: EvaluateConfig) -> EvaluateResult:
    """Measure ``cfg.swapped`` against ``cfg.source`` (see the module's list of measures).

    Raises:
        FaceswapError: a missing or unreadable input, inputs of different frame counts or
            sizes, a reference photo without a face, an unknown detector.
    """
    from faceswap.faces.align import landmark_region
    from faceswap.faces.detectors import create_detector
    from faceswap.faces.identity import IdentityFilter, face_descriptors
    from faceswap.faces.rotation import with_rotations

    swapped_path, source_path = Path(cfg.swapped), Path(cfg.source)
    for path in (swapped_path, source_path):
        if not path.exists():
            raise FaceswapError(f"{path}: no such file or folder; check the path")
    n_out, out_frames = _frames(swapped_path)
    n_src, src_frames = _frames(source_path)
    if n_out != n_src:
        raise FaceswapError(
            f"{swapped_path} has {n_out} frames and {source_path} {n_src}; evaluate compares "
            "frame by frame: pass the video or folder it was converted from"
        )
    detector = with_rotations(create_detector(cfg.detector, cfg.device), cfg.rotate)  # type: ignore[arg-type]
    refs = IdentityFilter.from_photos(cfg.refs_b, detector) if cfg.refs_b else None
    wanted = _selected(n_src, cfg.frames)

    rows: list[dict[str, float]] = []
    to_a: list[float] = []
    to_b: list[float] = []
    errors: list[float] = []
    sharp: list[float] = []
    jitters: list[float] = []
    flickers: list[float] = []
    sse, values, measured, src_faces, kept = 0.0, 0, 0, 0, 0
    previous: tuple[int, list[tuple[np.ndarray, np.ndarray, float, float]]] | None = None
    for index, (out, src) in enumerate(zip(out_frames, src_frames, strict=False)):
        if index not in wanted:
            continue
        if out.shape != src.shape:
            raise FaceswapError(
                f"{swapped_path}: frames of {out.shape[1]}x{out.shape[0]}, the source's "
                f"{src.shape[1]}x{src.shape[0]}; evaluate at the source's size (convert "
                "without --output-scale)"
            )
        measured += 1
        found_src, found_out = detector.detect(src), detector.detect(out)
        src_faces += len(found_src)
        both = np.concatenate([found_src.landmarks, found_out.landmarks])
        regions = landmark_region(src.shape, both)
        err, n = background_error(out, src, ~regions)
        sse, values = sse + err, values + n
        gray_out = cv2.cvtColor(out, cv2.COLOR_RGB2GRAY)
        gray_src = cv2.cvtColor(src, cv2.COLOR_RGB2GRAY)
        # (output landmarks, source landmarks, output face luma, source face luma) per face
        pairs: list[tuple[np.ndarray, np.ndarray, float, float]] = []
        for box, lm_src in zip(found_src.boxes, found_src.landmarks, strict=True):
            ious = [_iou(box, other) for other in found_out.boxes]
            if not ious or max(ious) < MATCH_IOU:
                continue
            lm_out = found_out.landmarks[int(np.argmax(ious))]
            kept += 1
            inside = landmark_region(src.shape, lm_src[None])
            luma = (float(gray_out[inside].mean()), float(gray_src[inside].mean()))
            pairs.append((lm_out, lm_src, *luma))
            errors.append(landmark_error(lm_out, lm_src))
            base = detail(gray_src, inside)
            if base > 0:
                sharp.append(detail(gray_out, inside) / base)
            d_out, d_src = face_descriptors(out, lm_out[None]), face_descriptors(src, lm_src[None])
            to_a.append(float(np.linalg.norm(d_out - d_src)))
            if refs is not None:
                to_b.append(float(refs.distances(d_out)[0]))
        if previous is not None and previous[0] == index - 1 and len(pairs) == len(previous[1]):
            for (lm_out, lm_src, y_out, y_src), (old_out, old_src, old_y_out, old_y_src) in zip(
                pairs, previous[1], strict=True
            ):
                motion = (lm_out - old_out) - (lm_src - old_src)
                jitters.append(
                    float(np.linalg.norm(motion, axis=1).mean() / max(eye_distance(lm_src), 1.0))
                )
                flickers.append(abs((y_out - old_y_out) - (y_src - old_y_src)))
        previous = (index, pairs)
        rows.append({"frame": index, "source_faces": len(found_src), "kept": len(pairs)})

    def median(values_: Sequence[float]) -> float | None:
        return round(float(np.median(values_)), 4) if values_ else None

    closer = None
    if to_b:
        closer = round(sum(b < a for a, b in zip(to_a, to_b, strict=True)) / len(to_b), 4)
    psnr = None
    if values:
        mse = sse / values
        psnr = math.inf if mse == 0 else round(10 * math.log10(255.0**2 / mse), 2)
    return EvaluateResult(
        swapped=swapped_path,
        source=source_path,
        frames=measured,
        source_faces=src_faces,
        faces_kept=kept,
        distance_to_a=median(to_a),
        distance_to_b=median(to_b),
        closer_to_b=closer,
        landmark_error=median(errors),
        jitter=median(jitters),
        flicker=median(flickers),
        sharpness=median(sharp),
        background_psnr=psnr,
        per_frame=tuple(rows),
    )

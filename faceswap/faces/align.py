"""Face alignment: a 68-point mean face, Umeyama similarity fits, crops and hull masks.

Coordinates:
    * Landmarks are float32 ``(68, 2)`` pixel coordinates ``(x, y)`` in the source frame, in
      the iBUG 300-W 68-point order (jaw 0-16, brows 17-26, nose 27-35, eyes 36-47,
      mouth 48-67).
    * :data:`MEAN_FACE` is in *unit* coordinates: the inner points (17-67, everything but the
      jaw) span ``x`` in [0, 1] and start at ``y = 0`` on the brows; the same scale is used for
      ``y``, so the lower lip sits near ``y = 0.84`` and the chin near ``y = 1.13``.
    * An alignment matrix is a 2x3 float64 affine mapping frame pixels to crop pixels; its
      inverse (:func:`invert_affine`) pastes a crop back into the frame.

Crop geometry (:class:`CropSpec`): ``centering`` names a region of the mean face and
``coverage`` is the fraction of the crop's side that region fills (the rest is margin):

    ========  =====================================================================
    legacy    brows to lower lip, cheek to cheek (the unit box of the mean face);
              what the original deepfakes models were trained on
    face      the whole face: forehead to chin, jaw line to jaw line (default)
    head      the whole head with hair and ears; for models that swap the head
    ========  =====================================================================

So ``CropSpec(256, coverage=1.0, centering="legacy")`` fills the 256 px crop edge to edge with
brows-to-lip, while the default ``CropSpec(256, 0.8, "face")`` shows the whole face in the
central 80 % with a margin that warping augmentation and blending can use.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

# The mean face was derived for this project: dlib's 68-point fits on the public-domain
# portraits shipped with scikit-image and matplotlib were Procrustes-aligned on the inner
# points, averaged, made upright and left/right symmetric, and scaled to unit coordinates.
_MEAN_FACE_POINTS = (
    (-0.0871, 0.2267), (-0.0693, 0.3786), (-0.0482, 0.5227), (-0.0192, 0.6700),
    (0.0292, 0.8107), (0.1053, 0.9351), (0.2216, 1.0321), (0.3479, 1.1066),
    (0.5000, 1.1261), (0.6521, 1.1066), (0.7784, 1.0321), (0.8947, 0.9351),
    (0.9708, 0.8107), (1.0192, 0.6700), (1.0482, 0.5227), (1.0693, 0.3786),
    (1.0871, 0.2267),
    (0.0000, 0.1184), (0.0616, 0.0276), (0.1633, 0.0000), (0.2702, 0.0064),
    (0.3689, 0.0436), (0.6311, 0.0436), (0.7298, 0.0064), (0.8367, 0.0000),
    (0.9384, 0.0276), (1.0000, 0.1184),
    (0.5000, 0.1649), (0.5000, 0.2782), (0.5000, 0.3816), (0.5000, 0.4884),
    (0.3707, 0.5435), (0.4338, 0.5630), (0.5000, 0.5792), (0.5662, 0.5630),
    (0.6293, 0.5435),
    (0.1295, 0.1862), (0.1896, 0.1377), (0.2670, 0.1377), (0.3332, 0.2008),
    (0.2605, 0.2072), (0.1862, 0.2073), (0.6668, 0.2008), (0.7330, 0.1377),
    (0.8104, 0.1377), (0.8705, 0.1862), (0.8138, 0.2073), (0.7395, 0.2072),
    (0.2463, 0.7055), (0.3369, 0.6844), (0.4304, 0.6779), (0.5000, 0.6955),
    (0.5696, 0.6779), (0.6631, 0.6844), (0.7537, 0.7055), (0.6663, 0.7909),
    (0.5726, 0.8298), (0.5000, 0.8413), (0.4274, 0.8298), (0.3337, 0.7909),
    (0.2805, 0.7136), (0.4306, 0.7214), (0.5000, 0.7315), (0.5694, 0.7214),
    (0.7195, 0.7136), (0.5694, 0.7682), (0.5000, 0.7763), (0.4306, 0.7682),
)  # fmt: skip

MEAN_FACE: np.ndarray = np.asarray(_MEAN_FACE_POINTS, dtype=np.float64)
MEAN_FACE.setflags(write=False)
"""(68, 2) float64 mean face in unit coordinates (see the module docstring)."""

#: Landmarks used for the fit: the jaw line (0-16) follows the head's outline and slides with
#: pose and beards, so fitting on the inner points keeps crops steady.
FIT_POINTS = slice(17, 68)

#: centering name -> (centre x, centre y, side) of its region in unit coordinates.
CENTERINGS: dict[str, tuple[float, float, float]] = {
    "legacy": (0.5, 0.5, 1.0),
    "face": (0.5, 0.45, 1.45),
    "head": (0.5, 0.35, 2.1),
}

# Pairs of landmark indices swapped by a left/right mirror, for flipping augmentations.
MIRROR_INDEX: tuple[int, ...] = (
    *range(16, -1, -1), *range(26, 16, -1), 27, 28, 29, 30, 35, 34, 33, 32, 31,
    45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40,
    54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55, 64, 63, 62, 61, 60, 67, 66, 65,
)  # fmt: skip


@dataclass(frozen=True)
class CropSpec:
    """Geometry of an aligned face crop.

    Attributes:
        size: side of the square crop in pixels (>= 8).
        coverage: fraction (0, 1] of the crop's side filled by the ``centering`` region.
        centering: ``legacy`` (brows to lip), ``face`` (forehead to chin) or ``head``
            (whole head); see the module docstring.
    """

    size: int = 256
    coverage: float = 0.8
    centering: str = "face"

    def __post_init__(self) -> None:
        if not isinstance(self.size, int) or self.size < 8:
            raise ValueError(f"crop size must be an integer >= 8 pixels, got {self.size!r}")
        if not 0.0 < float(self.coverage) <= 1.0:
            raise ValueError(f"crop coverage must be in (0, 1], got {self.coverage!r}")
        if self.centering not in CENTERINGS:
            raise ValueError(
                f"unknown centering '{self.centering}'; choose from {', '.join(CENTERINGS)}"
            )

    def unit_to_crop(self) -> np.ndarray:
        """(3, 3) affine mapping mean-face unit coordinates to crop pixels."""
        cx, cy, side = CENTERINGS[self.centering]
        span = side / float(self.coverage)
        scale = self.size / span
        return np.array(
            [
                [scale, 0.0, (span / 2 - cx) * scale],
                [0.0, scale, (span / 2 - cy) * scale],
                [0.0, 0.0, 1.0],
            ]
        )


def umeyama(src: np.ndarray, dst: np.ndarray, estimate_scale: bool = True) -> np.ndarray:
    """Least-squares similarity transform taking ``src`` points onto ``dst`` (Umeyama 1991).

    Args:
        src: (N, 2) source points.
        dst: (N, 2) destination points, same order.
        estimate_scale: fit a uniform scale too; else rotation and translation only.

    Returns:
        (3, 3) float64 homogeneous matrix ``T`` with ``dst ≈ (T @ [x, y, 1])[:2]``. A
        reflection is never returned.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or len(src) < 2:
        raise ValueError(f"umeyama needs two (N>=2, 2) arrays, got {src.shape} and {dst.shape}")
    n = len(src)
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    cov = dst_c.T @ src_c / n
    u, sing, vt = np.linalg.svd(cov)
    d = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[-1] = -1.0  # the best orthogonal fit is a reflection: take the nearest rotation
    rot = u @ np.diag(d) @ vt
    src_var = (src_c**2).sum() / n
    scale = float((sing * d).sum() / src_var) if estimate_scale and src_var > 0 else 1.0
    out = np.eye(3)
    out[:2, :2] = scale * rot
    out[:2, 2] = dst_mean - scale * rot @ src_mean
    return out


def alignment_matrix(landmarks: np.ndarray, spec: CropSpec) -> np.ndarray:
    """The 2x3 float64 affine mapping frame pixels to the crop described by ``spec``.

    Args:
        landmarks: (68, 2) landmarks in frame pixels.
        spec: crop geometry.
    """
    landmarks = np.asarray(landmarks, dtype=np.float64)
    if landmarks.shape != (68, 2):
        raise ValueError(f"expected (68, 2) landmarks, got {landmarks.shape}")
    to_unit = umeyama(landmarks[FIT_POINTS], MEAN_FACE[FIT_POINTS], estimate_scale=True)
    return (spec.unit_to_crop() @ to_unit)[:2].copy()


def warp_to_crop(
    image: np.ndarray,
    matrix: np.ndarray,
    size: int,
    *,
    border: int = cv2.BORDER_CONSTANT,
) -> np.ndarray:
    """Cut the aligned ``size`` x ``size`` crop out of ``image`` (HxWxC uint8 or float).

    Shrinking uses area averaging on a pre-scaled copy when the face is much larger than the
    crop, so large faces do not alias; parts outside the frame are black.
    """
    matrix = np.asarray(matrix, dtype=np.float64)[:2]
    scale = float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))
    if scale < 0.5:
        # Bilinear sampling skips pixels when shrinking by more than 2x: pre-shrink with
        # INTER_AREA, then warp the smaller image with a matrix that expects it.
        h, w = image.shape[:2]
        small_w = max(1, round(w * scale * 2.0))
        small_h = max(1, round(h * scale * 2.0))
        image = cv2.resize(image, (small_w, small_h), interpolation=cv2.INTER_AREA)
        matrix = matrix @ np.diag([w / small_w, h / small_h, 1.0])
    return cv2.warpAffine(
        image, matrix, (int(size), int(size)), flags=cv2.INTER_LINEAR, borderMode=border
    )


def transform_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Apply a 2x3 (or 3x3) affine to (..., 2) points; returns float32 of the same shape."""
    pts = np.asarray(points, dtype=np.float64)
    m = np.asarray(matrix, dtype=np.float64)[:2]
    out = pts @ m[:, :2].T + m[:, 2]
    return out.astype(np.float32)


def invert_affine(matrix: np.ndarray) -> np.ndarray:
    """Inverse of a 2x3 affine as a 2x3 float64 matrix (crop -> frame for a frame -> crop)."""
    full = np.eye(3)
    full[:2] = np.asarray(matrix, dtype=np.float64)[:2]
    return np.linalg.inv(full)[:2].copy()


#: Share of the brow-to-chin height the face hull is raised by over the forehead, in
#: training's masks and convert's ``hull`` alike: the decoders learn every pixel convert
#: pastes (DeepFaceLab's hull expands the brows, faceswap's extended mask the same way).
HULL_FOREHEAD = 0.2


def hull_mask(
    crop_landmarks: np.ndarray,
    size: int,
    *,
    forehead: float = 0.0,
    feather: int = 0,
) -> np.ndarray:
    """Face mask from the convex hull of the landmarks, as float32 (size, size) in [0, 1].

    Args:
        crop_landmarks: (68, 2) landmarks already in crop pixels
            (``transform_points(landmarks, matrix)``).
        size: side of the crop in pixels.
        forehead: raise the brow points by this fraction of the brow-to-chin height so the
            mask covers the forehead (0 keeps the plain hull; 0.3 is a common choice).
        feather: Gaussian blur radius in pixels for a soft edge (0 for a hard edge).
    """
    pts = np.asarray(crop_landmarks, dtype=np.float64).reshape(-1, 2)
    if forehead > 0 and len(pts) == 68:
        brows = pts[17:27]
        chin = pts[8]
        lift = (chin - brows.mean(axis=0)) * float(forehead)
        pts = np.concatenate([pts, brows - lift])
    mask = np.zeros((int(size), int(size)), dtype=np.uint8)
    hull = cv2.convexHull(np.round(pts * 16).astype(np.int32))
    # 4 fractional bits keep the polygon edge at sub-pixel accuracy.
    cv2.fillConvexPoly(mask, hull, 255, lineType=cv2.LINE_AA, shift=4)
    out = mask.astype(np.float32) / 255.0
    if feather > 0:
        k = 2 * int(feather) + 1
        out = cv2.GaussianBlur(out, (k, k), 0)
    return out


#: How far :func:`landmark_region` reaches beyond the landmarks' hull (brow to hairline,
#: jaw): a swap's blend mask covers a forehead the 68 points leave out.
REGION_GROWTH = 0.15


def landmark_region(
    shape: tuple[int, ...], landmarks: np.ndarray, growth: float = REGION_GROWTH
) -> np.ndarray:
    """bool (H, W) in frame space: the faces' landmark hulls, each grown by ``growth`` of
    its size about its centre. ``landmarks``: (N, 68, 2) frame pixels (N may be 0)."""
    region = np.zeros(shape[:2], np.uint8)
    for points in np.asarray(landmarks, np.float32).reshape(-1, 68, 2):
        centre = points.mean(0)
        grown = (points - centre) * (1.0 + growth) + centre
        cv2.fillConvexPoly(region, cv2.convexHull(np.rint(grown).astype(np.int32)), 1)
    return region.astype(bool)

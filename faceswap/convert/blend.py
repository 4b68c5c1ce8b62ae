"""Paste a swapped crop back into its frame: inverse warp, optional Poisson clone, alpha blend.

Only the face's bounding region of the frame is touched; every pixel where the warped mask is
0 keeps its exact original value, so the frame around the face (and frames without faces)
stays byte-identical.
"""

from __future__ import annotations

import cv2
import numpy as np

from faceswap.faces.align import invert_affine
from faceswap.io.images import as_8bit, peak_value

# Margin (px) added around the region before cv2.seamlessClone: its Poisson solve needs a
# border of known pixels around the mask, which a face touching the frame edge lacks.
_CLONE_PAD = 4
# Mask values at or below this count as outside the face.
_MASK_EPS = 1.0 / 512.0


def sharpen(face: np.ndarray, amount: float, radius: float = 1.0) -> np.ndarray:
    """Unsharp mask: ``face + amount * (face - blur(face))``.

    Args:
        face: float32 (S, S, 3) in [0, 1].
        amount: strength (0 leaves the image as is; 0.5 to 1.5 is typical).
        radius: Gaussian sigma in pixels of the crop.

    Returns:
        float32 (S, S, 3) in [0, 1].
    """
    if amount <= 0:
        return face
    blurred = cv2.GaussianBlur(face, (0, 0), sigmaX=max(float(radius), 0.3))
    return np.clip(face + float(amount) * (face - blurred), 0.0, 1.0).astype(np.float32)


def soften(face: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of a float32 crop with ``sigma`` crop pixels (under 0.3: unchanged): a
    swap sharper than a soft plate (focus, lens, compression) stands out too."""
    if sigma < 0.3:
        return face
    return cv2.GaussianBlur(face, (0, 0), sigmaX=float(sigma))


# The residual of white noise after a sigma-1 Gaussian blur keeps this share of its spread:
# sqrt(1 - 2 g(0) + sum g^2) with g(0) = 1 / (2 pi) and sum g^2 = 1 / (4 pi).
_RESIDUAL_SHARE = float(np.sqrt(1 - 1 / np.pi + 1 / (4 * np.pi)))


def noise_sigma(image: np.ndarray, where: np.ndarray) -> np.ndarray:
    """Per-channel spread of the fine grain of ``image`` (H, W, C) at the pixels ``where``
    (bool (H, W)): the robust (MAD) spread of what a sigma-1 blur removes, scaled to the
    sigma of white noise that would leave it. Zeros when fewer than 16 pixels are given."""
    image = np.asarray(image, np.float32)
    if int(where.sum()) < 16:
        return np.zeros(image.shape[-1], np.float32)
    residual = (image - cv2.GaussianBlur(image, (0, 0), sigmaX=1.0))[where]
    mad = np.median(np.abs(residual - np.median(residual, axis=0)), axis=0)
    return (1.4826 * mad / _RESIDUAL_SHARE).astype(np.float32)


def motion_kernel(dx: float, dy: float) -> np.ndarray | None:
    """A normalised line kernel blurring along ``(dx, dy)`` (crop pixels, centred), or None
    when the streak is under a pixel long."""
    length = float(np.hypot(dx, dy))
    if length < 1.0:
        return None
    side = 2 * int(np.ceil(length / 2.0)) + 1
    # Drawn 8x larger and shrunk, so short and diagonal streaks keep their length and angle.
    up = 8
    canvas = np.zeros((side * up, side * up), np.float32)
    c = (side * up - 1) / 2.0
    # The pen is a pixel wide with round ends, so the centre line is a pixel shorter.
    reach = (length - 1.0) / length * up / 2.0
    hx, hy = dx * reach, dy * reach
    shift = 4  # cv2.line's fractional bits
    p0 = (round((c - hx) * (1 << shift)), round((c - hy) * (1 << shift)))
    p1 = (round((c + hx) * (1 << shift)), round((c + hy) * (1 << shift)))
    cv2.line(canvas, p0, p1, 1.0, thickness=up, lineType=cv2.LINE_AA, shift=shift)
    kernel = cv2.resize(canvas, (side, side), interpolation=cv2.INTER_AREA)
    return kernel / kernel.sum()


def motion_blur(face: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """Smear a float32 (S, S, 3) crop along ``(dx, dy)`` crop pixels, as a moving face is
    smeared by the camera's shutter (DeepFaceLab's motion blur); unchanged under a pixel."""
    kernel = motion_kernel(dx, dy)
    if kernel is None:
        return face
    return cv2.filter2D(face, -1, kernel, borderType=cv2.BORDER_REFLECT)


def scale_about_centre(matrix: np.ndarray, scale: float, size: int) -> np.ndarray:
    """The frame -> crop affine that pastes a ``size`` px crop ``scale`` times as large on
    the frame, about the crop's centre (DeepFaceLab's output face scale).

    Crop point q then lands where ``matrix`` put ``c + scale * (q - c)``, c the centre.
    """
    centre = size / 2.0
    scaled = np.array(matrix, dtype=np.float64)[:2] / scale
    scaled[:, 2] += centre * (1.0 - 1.0 / scale)
    return scaled


def face_region(
    matrix: np.ndarray, mask: np.ndarray, frame_shape: tuple[int, ...]
) -> tuple[int, int, int, int] | None:
    """Frame-pixel box ``(x0, y0, x1, y1)`` (exclusive end) covering the mask once pasted.

    Args:
        matrix: (2, 3) affine frame -> crop.
        mask: (S, S) crop-space mask; only its non-zero part counts.
        frame_shape: the frame's shape (H, W, ...).

    Returns:
        The box clipped to the frame, or None when the face lies outside it.
    """
    ys, xs = np.nonzero(mask > _MASK_EPS)
    if len(xs) == 0:
        return None
    x_lo, x_hi, y_lo, y_hi = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
    corners = np.array([[x_lo, y_lo], [x_hi, y_lo], [x_lo, y_hi], [x_hi, y_hi]], np.float64)
    inv = invert_affine(matrix)
    pts = corners @ inv[:, :2].T + inv[:, 2]
    h, w = frame_shape[:2]
    # One pixel of slack: bilinear sampling reaches half a pixel past the mask's last texel.
    x0 = max(int(np.floor(pts[:, 0].min())) - 1, 0)
    y0 = max(int(np.floor(pts[:, 1].min())) - 1, 0)
    x1 = min(int(np.ceil(pts[:, 0].max())) + 2, w)
    y1 = min(int(np.ceil(pts[:, 1].max())) + 2, h)
    if x1 <= x0 or y1 <= y0:
        return None
    return x0, y0, x1, y1


def seamless_clone(face: np.ndarray, region: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Poisson-blend ``face`` into ``region`` under ``mask`` with ``cv2.seamlessClone``.

    Args:
        face: uint8 (h, w, 3) face already warped into the region's pixels.
        region: uint8 (h, w, 3) the frame's pixels there.
        mask: float32 (h, w) warped mask; everything above ~0 is cloned.

    Returns:
        uint8 (h, w, 3): inside the mask the face's gradients with the region's boundary
        colours; outside it the region unchanged. A mask too thin to have an interior
        returns ``face`` unchanged.
    """
    binary = (mask > _MASK_EPS).astype(np.uint8) * 255
    if not binary.any():
        return region
    # A sliver (a face just entering the frame) has no interior for the Poisson solve, and
    # cv2.seamlessClone fails on it: paste such a face as it is.
    if not cv2.erode(binary, np.ones((3, 3), np.uint8), borderValue=0).any():
        return face
    p = _CLONE_PAD
    # Reflect the frame so the boundary the solver sees continues the picture; the mask pad
    # is empty, which keeps the masked area strictly inside the padded image.
    src = cv2.copyMakeBorder(face, p, p, p, p, cv2.BORDER_REFLECT)
    dst = cv2.copyMakeBorder(region, p, p, p, p, cv2.BORDER_REFLECT)
    msk = cv2.copyMakeBorder(binary, p, p, p, p, cv2.BORDER_CONSTANT, value=0)
    x, y, bw, bh = cv2.boundingRect(msk)
    # seamlessClone places the mask's bounding box at centre - (w // 2, h // 2): this centre
    # puts it back exactly where it came from.
    centre = (x + bw // 2, y + bh // 2)
    out = cv2.seamlessClone(src, dst, msk, centre, cv2.NORMAL_CLONE)
    return out[p:-p, p:-p]


def paste_face(
    frame: np.ndarray,
    face: np.ndarray,
    mask: np.ndarray,
    matrix: np.ndarray,
    *,
    seamless: bool = False,
    matte: np.ndarray | None = None,
    grain: float = 0.0,
    seed: int | tuple[int, ...] = 0,
) -> None:
    """Warp a crop and its mask back into ``frame`` (in place) and alpha-blend them.

    Args:
        frame: uint8 (H, W, 3) RGB, modified in place; or uint16 (0-65535), a frame of
            more than 8 bits, which keeps its depth (a Poisson clone runs in 8 bits: only
            the face is drawn at that precision).
        face: float32 (S, S, 3) RGB in [0, 1], the swapped (colour-corrected) crop.
        mask: float32 (S, S) in [0, 1], the refined blend mask in crop space.
        matrix: (2, 3) affine frame -> crop that produced the crop.
        seamless: Poisson-clone the face before the alpha blend.
        matte: uint8 (H, W) frame-space matte, raised in place to this face's alpha (0-255)
            where the face covers it: the output of ``--matte``.
        grain: add grain to the pasted face, in frame pixels, to this share of what the
            plate under it has beyond the face's own (0 off, 1 matched): a decoder draws
            faces cleaner than grainy or noisy footage. Seeded by ``seed``.
    """
    box = face_region(matrix, mask, frame.shape)
    if box is None:
        return
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    to_region = invert_affine(matrix)
    to_region[:, 2] -= (x0, y0)
    peak = peak_value(frame)
    face_scaled = np.ascontiguousarray(face, dtype=np.float32) * peak
    warped = cv2.warpAffine(
        face_scaled, to_region, (w, h), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE
    )
    alpha = cv2.warpAffine(
        np.ascontiguousarray(mask, dtype=np.float32),
        to_region,
        (w, h),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0,
    )
    np.clip(alpha, 0.0, 1.0, out=alpha)
    alpha[alpha <= _MASK_EPS] = 0.0
    region = frame[y0:y1, x0:x1]
    if seamless:
        scale = 255.0 / peak
        face_u8 = np.clip(np.rint(warped * scale), 0, 255).astype(np.uint8)
        cloned = seamless_clone(face_u8, as_8bit(region), alpha)
        warped = cloned.astype(np.float32) / scale
    base = region.astype(np.float32)
    if grain > 0:
        core = alpha > 0.5
        # The plate's grain there (its own face) beyond what the warped face already has.
        missing = np.sqrt(
            np.maximum(noise_sigma(base, core) ** 2 - noise_sigma(warped, core) ** 2, 0)
        )
        rng = np.random.default_rng(seed)
        warped = warped + rng.standard_normal(warped.shape, np.float32) * (grain * missing)
    # base + (face - base) * a is exactly base wherever a == 0: untouched pixels stay equal.
    out = base + (warped - base) * alpha[..., None]
    frame[y0:y1, x0:x1] = np.clip(np.rint(out), 0, peak).astype(frame.dtype)
    if matte is not None:
        patch = matte[y0:y1, x0:x1]
        np.maximum(patch, np.rint(alpha * 255).astype(np.uint8), out=patch)

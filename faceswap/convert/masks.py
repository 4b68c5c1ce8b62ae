"""Face masks for blending: landmark hull, the model's learned masks, or products of them.

A mask mode builds a float32 ``(S, S)`` mask in [0, 1] in aligned-crop space from the face's
landmarks in crop pixels and, when the model learns one, the decoders' masks: the one the
swap is drawn with (``learned``, DeepFaceLab's learned-prd) and the one the face's own
decoder draws for it (``learned-dst``), which follows what covers the face in the
destination footage when the model was trained on masks that leave such things out; and
the masks a trained segmenter (``faceswap train-masks``) draws for the face (``segment``)
and for the swap (``segment-both``). The mask is then eroded or dilated and feathered by
amounts given as a percentage of the crop side, so the same settings suit small and large
faces alike (:func:`refine_mask`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from faceswap.errors import FaceswapError
from faceswap.faces.align import HULL_FOREHEAD, hull_mask
from faceswap.registry import Registry

# crop_landmarks (68,2) crop px, size, learned (S,S) f32 | None, and keywords learned_dst,
# segment, segment_swap: (S,S) f32 | None -> (S,S) f32 in [0,1]
MaskFn = Callable[..., np.ndarray]

#: Share of the brow-to-chin height the hull is raised by to cover the forehead (training's).
FOREHEAD = HULL_FOREHEAD


@dataclass(frozen=True)
class MaskMode:
    """A named mask mode.

    Attributes:
        name: registry name (what ``--mask`` takes).
        help: one line for ``--help``.
        build: the mask function.
        needs_learned: the model must have a learned mask for this mode.
        needs_dst: the mode uses the mask the face's own decoder draws (one more decoder
            pass per face).
        needs_segment: the mode uses a segmenter's masks (``--mask-model``): of the face,
            and with ``needs_segment_swap`` of the swapped face too.
    """

    name: str
    help: str
    build: MaskFn
    needs_learned: bool = False
    needs_dst: bool = False
    needs_segment: bool = False
    needs_segment_swap: bool = False


MASK_MODES: Registry[MaskMode] = Registry("mask mode")


def register_mask(
    name: str,
    help: str,
    *,
    needs_learned: bool = False,
    needs_dst: bool = False,
    needs_segment: bool = False,
    needs_segment_swap: bool = False,
) -> Callable:
    """Decorator registering a :data:`MaskFn` under ``name`` in :data:`MASK_MODES`."""

    def decorator(fn: MaskFn) -> MaskFn:
        mode = MaskMode(
            name,
            help,
            fn,
            needs_learned=needs_learned or needs_dst,
            needs_dst=needs_dst,
            needs_segment=needs_segment or needs_segment_swap,
            needs_segment_swap=needs_segment_swap,
        )
        MASK_MODES.add(name, mode)
        return fn

    return decorator


@register_mask("hull", "convex hull of the 68 landmarks, raised to cover the forehead")
def landmark_hull(
    crop_landmarks: np.ndarray, size: int, learned: np.ndarray | None = None, **_: object
) -> np.ndarray:
    return hull_mask(crop_landmarks, size, forehead=FOREHEAD)


@register_mask(
    "box",
    "the whole aligned crop (DFL's raw-rgb, faceswap's none): the model's raw square, its "
    "edge faded by --erode/--blur",
)
def box_mask(
    crop_landmarks: np.ndarray, size: int, learned: np.ndarray | None = None, **_: object
) -> np.ndarray:
    return np.ones((size, size), dtype=np.float32)


def _learned(learned: np.ndarray | None, size: int) -> np.ndarray:
    if learned is None:
        raise FaceswapError(
            "this mask mode needs a model with a learned mask; use --mask hull or train a "
            "preset with learned_mask: true"
        )
    learned = np.asarray(learned, dtype=np.float32)
    if learned.shape != (size, size):
        learned = cv2.resize(learned, (size, size), interpolation=cv2.INTER_LINEAR)
    return np.clip(learned, 0.0, 1.0)


@register_mask(
    "learned",
    "the mask the swap is drawn with (models with learned_mask)",
    needs_learned=True,
)
def learned_mask(
    crop_landmarks: np.ndarray, size: int, learned: np.ndarray | None = None, **_: object
) -> np.ndarray:
    return _learned(learned, size)


@register_mask(
    "product",
    "hull times learned (only what both call face; models with learned_mask)",
    needs_learned=True,
)
def product_mask(
    crop_landmarks: np.ndarray, size: int, learned: np.ndarray | None = None, **_: object
) -> np.ndarray:
    return landmark_hull(crop_landmarks, size) * _learned(learned, size)


@register_mask(
    "learned-dst",
    "the mask the face's own decoder draws for it: follows hands, hair or glasses over the "
    "face when trained on masks that leave them out (models with learned_mask)",
    needs_dst=True,
)
def learned_dst_mask(
    crop_landmarks: np.ndarray,
    size: int,
    learned: np.ndarray | None = None,
    learned_dst: np.ndarray | None = None,
    **_: object,
) -> np.ndarray:
    return _learned(learned_dst, size)


@register_mask(
    "learned-both",
    "learned times learned-dst: only what the swap and the original both call face",
    needs_dst=True,
)
def learned_both_mask(
    crop_landmarks: np.ndarray,
    size: int,
    learned: np.ndarray | None = None,
    learned_dst: np.ndarray | None = None,
    **_: object,
) -> np.ndarray:
    return _learned(learned, size) * _learned(learned_dst, size)


@register_mask(
    "learned-union",
    "learned plus learned-dst, clipped: what either calls face (DFL's learned-prd+dst)",
    needs_dst=True,
)
def learned_union_mask(
    crop_landmarks: np.ndarray,
    size: int,
    learned: np.ndarray | None = None,
    learned_dst: np.ndarray | None = None,
    **_: object,
) -> np.ndarray:
    return np.clip(_learned(learned, size) + _learned(learned_dst, size), 0.0, 1.0)


def _segmented(mask: np.ndarray | None, size: int) -> np.ndarray:
    if mask is None:
        raise FaceswapError(
            "this mask mode needs a mask model: add --mask-model (a `faceswap train-masks` "
            "folder) or use --mask hull"
        )
    return _learned(mask, size)


@register_mask(
    "segment",
    "the mask a trained mask model (--mask-model) draws for the face: leaves out hands, "
    "hair or glasses over it, as DeepFaceLab's XSeg-dst",
    needs_segment=True,
)
def segment_mask(
    crop_landmarks: np.ndarray,
    size: int,
    learned: np.ndarray | None = None,
    segment: np.ndarray | None = None,
    **_: object,
) -> np.ndarray:
    return _segmented(segment, size)


@register_mask(
    "segment-both",
    "segment times the mask model's mask of the swapped face (XSeg-prd*dst)",
    needs_segment_swap=True,
)
def segment_both_mask(
    crop_landmarks: np.ndarray,
    size: int,
    learned: np.ndarray | None = None,
    segment: np.ndarray | None = None,
    segment_swap: np.ndarray | None = None,
    **_: object,
) -> np.ndarray:
    return _segmented(segment, size) * _segmented(segment_swap, size)


@register_mask(
    "segment-swap",
    "the mask model's mask of the swapped face alone (XSeg-prd)",
    needs_segment_swap=True,
)
def segment_swap_mask(
    crop_landmarks: np.ndarray,
    size: int,
    learned: np.ndarray | None = None,
    segment_swap: np.ndarray | None = None,
    **_: object,
) -> np.ndarray:
    return _segmented(segment_swap, size)


@register_mask(
    "all",
    "learned times learned-dst times segment-both: only what every mask calls face "
    "(DFL's learned-prd*learned-dst*XSeg-prd*XSeg-dst)",
    needs_dst=True,
    needs_segment_swap=True,
)
def all_masks(
    crop_landmarks: np.ndarray,
    size: int,
    learned: np.ndarray | None = None,
    learned_dst: np.ndarray | None = None,
    segment: np.ndarray | None = None,
    segment_swap: np.ndarray | None = None,
    **_: object,
) -> np.ndarray:
    learned_part = learned_both_mask(crop_landmarks, size, learned, learned_dst=learned_dst)
    return learned_part * segment_both_mask(
        crop_landmarks, size, segment=segment, segment_swap=segment_swap
    )


def _shrink(mask: np.ndarray, pixels: float) -> np.ndarray:
    """Erode (pixels > 0) or dilate (< 0) a soft mask by a sub-pixel distance.

    Distances come from a Euclidean distance transform of the mask's core (> 0.5), so the
    result scales smoothly with crop size instead of jumping by whole kernel pixels.
    """
    core = (mask > 0.5).astype(np.uint8)
    if pixels > 0:
        # The crop's edge counts as outside: a mask cut off by the crop (a large hull, a
        # learned mask reaching the border) is then eroded from that edge too and fades out
        # before it, instead of ending in a straight, visible line.
        padded = cv2.copyMakeBorder(core, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
        inside = cv2.distanceTransform(padded, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)[1:-1, 1:-1]
        # Fade over one pixel at the new edge to keep it anti-aliased.
        keep = np.clip(inside - pixels, 0.0, 1.0)
        return mask * keep
    outside = cv2.distanceTransform(1 - core, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    grow = np.clip(-pixels + 0.5 - outside, 0.0, 1.0)
    return np.maximum(mask, grow)


#: Outward directions (x, y) in the aligned crop of the edges ``sides`` erodes: top (the
#: forehead), bottom (the chin), left, right (of the crop as seen).
SIDES = {"top": (0, -1), "bottom": (0, 1), "left": (-1, 0), "right": (1, 0)}


def _erode_sides(mask: np.ndarray, pixels: tuple[float, ...]) -> np.ndarray:
    """Move each edge of the mask in (> 0) or out (< 0) by its own amount, the others
    staying where they are (faceswap's per-side erosion): the mask is shifted against that
    edge's outward direction and the two combined, by min to erode, by max to dilate."""
    out = mask
    size = mask.shape[0]
    for (dx, dy), amount in zip(SIDES.values(), pixels, strict=True):
        if abs(amount) < 1e-3:
            continue
        shift = np.float32([[1, 0, -dx * amount], [0, 1, -dy * amount]])
        moved = cv2.warpAffine(out, shift, (size, size), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=0)  # fmt: skip
        out = np.minimum(out, moved) if amount > 0 else np.maximum(out, moved)
    return out


def refine_mask(
    mask: np.ndarray,
    erode: float = 0.0,
    blur: float = 0.0,
    sides: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0),
) -> np.ndarray:
    """Erode (or dilate) then feather a crop-space mask.

    Args:
        mask: float32 (S, S) in [0, 1].
        erode: percent of the crop side to shrink the mask by; negative grows it.
        blur: feather width as percent of the crop side: the mask ramps from 1 to ~0 over
            this width, all of it inside the unfeathered edge (Gaussian, sigma = width / 4).
        sides: percent of the crop side to move the top, bottom, left and right edges in
            by (negative: out), on top of ``erode`` (:data:`SIDES`).

    Returns:
        float32 (S, S) in [0, 1]; the input is not modified.
    """
    size = mask.shape[0]
    out = np.asarray(mask, dtype=np.float32)
    if any(sides):
        out = _erode_sides(out, tuple(side / 100.0 * size for side in sides))
    pixels = erode / 100.0 * size
    width = max(blur, 0.0) / 100.0 * size
    # Shrink by half the feather too, so the soft edge stays inside the hull and never
    # spills swapped pixels past the face outline.
    if width > 0.5:
        pixels += width / 2.0
    if abs(pixels) > 1e-3:
        out = _shrink(out, pixels)
    if width > 0.5:
        k = 2 * int(np.ceil(width)) + 1
        out = cv2.GaussianBlur(out, (k, k), sigmaX=width / 4, borderType=cv2.BORDER_CONSTANT)
    return np.clip(out, 0.0, 1.0).astype(np.float32, copy=False)


def build_mask(
    mode: str,
    crop_landmarks: np.ndarray,
    size: int,
    learned: np.ndarray | None = None,
    *,
    erode: float = 0.0,
    blur: float = 0.0,
    sides: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0),
    **inputs: np.ndarray | None,
) -> np.ndarray:
    """The refined (S, S) float32 blend mask for ``mode`` (a :data:`MASK_MODES` name);
    ``inputs``: ``learned_dst``, ``segment``, ``segment_swap`` as the mode needs them."""
    raw = MASK_MODES.get(mode).build(crop_landmarks, size, learned, **inputs)
    return refine_mask(raw, erode=erode, blur=blur, sides=sides)

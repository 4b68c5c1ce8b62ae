"""Augmentation: per-sample geometry and colour on the CPU, the classic random warp in torch.

Everything random here is driven by explicit seeds (a numpy ``Generator`` per sample, a torch
``Generator`` per step), never by global state, so a run is reproducible whatever the number
of DataLoader workers and a resumed run sees the same augmentations as an uninterrupted one.

Split of the work:
    * :func:`random_transform` (CPU, per sample): random rotation/zoom/shift and horizontal
      flip, applied identically to the face, its mask and its eye/mouth regions.
    * :class:`ColourAugment` (CPU, per sample): albumentations lighting and colour changes
      applied to input and target alike (the decoder must draw any lighting), plus blur and
      noise on the input only (the model learns to see through soft or noisy footage).
    * :func:`random_warp` (training device, per batch): the grid-jitter warp of the input; the
      target stays unwarped, which is what forces the autoencoder to learn the face rather
      than copy pixels. Running it on the GPU keeps the workers from starving the model.
    * :func:`warp_to_landmarks` (CPU, per sample; faceswap's warp to landmarks, in place of
      the grid warp): the input is warped piecewise-linearly so its landmarks land on those
      of a similar face of the other side (:func:`closest_faces`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from faceswap.errors import FaceswapError


@dataclass(frozen=True)
class AugmentConfig:
    """Switches and strengths of the augmentations (all seeded).

    Attributes:
        flip: random horizontal flip with probability 0.5.
        rotation: maximum rotation in degrees (uniform in ±rotation).
        zoom: maximum relative scale change (uniform in ±zoom).
        shift: maximum shift as a fraction of the crop size.
        warp: warp the input: the classic random grid warp, or with ``warp_to_landmarks``
            the landmark warp.
        warp_to_landmarks: in place of the grid warp, warp each input onto the landmarks
            of one of the :data:`PARTNERS` faces of the other side nearest to it in shape
            (faceswap's warp to landmarks).
        warp_strength: std-dev of the grid jitter as a fraction of the crop size.
        warp_grid: number of control points per side of the jitter grid.
        colour: albumentations brightness/contrast, hue/saturation, gamma (input and target).
        colour_strength: scales every limit of those (1: the defaults, 0.5 half as strong,
            2 twice; DeepFaceLab's random HSV power, faceswap's colour lightness and ab).
        blur: albumentations blur and noise on the input only.
        jpeg: also JPEG compression artefacts on the input only (quality 30-90, a third of
            the samples), so the model sees through compressed footage.
        downscale: also a loss of resolution on the input only (shrunk to 25-75 % of its
            side and enlarged back, area down and linear up, a third of the samples;
            DeepFaceLab's random downsample), for soft or upscaled footage.
        colour_transfer: a convert colour mode (``rct``, ``lct``, ``avg``, ``hist``; ``none``
            off) that gives each B face the colours of a random A face before the other
            augmentations, as DeepFaceLab's ``ct_mode`` does: decoder B learns to draw B in
            the lighting of A's footage, which convert then has less colour to correct.
    """

    flip: bool = True
    rotation: float = 10.0
    zoom: float = 0.05
    shift: float = 0.05
    warp: bool = True
    warp_to_landmarks: bool = False
    warp_strength: float = 0.02
    warp_grid: int = 5
    colour: bool = True
    colour_strength: float = 1.0
    blur: bool = True
    jpeg: bool = False
    downscale: bool = False
    colour_transfer: str = "none"

    def __post_init__(self) -> None:
        from faceswap.convert.colour import crop_colour_modes

        if not 0 <= self.colour_strength <= 3:
            raise FaceswapError(
                f"--colour-strength must be in [0, 3] (1: the default augmentation), got "
                f"{self.colour_strength}"
            )
        if self.colour_transfer not in crop_colour_modes():
            raise FaceswapError(
                f"unknown colour transfer '{self.colour_transfer}'; choose one of "
                f"{', '.join(crop_colour_modes())}"
            )

    @property
    def grid_warp(self) -> bool:
        """Whether the trainer applies :func:`random_warp` to the input."""
        return self.warp and not self.warp_to_landmarks

    @property
    def landmark_warp(self) -> bool:
        """Whether the dataset applies :func:`warp_to_landmarks` to the input."""
        return self.warp and self.warp_to_landmarks


@dataclass(frozen=True)
class SampleTransform:
    """One sample's random similarity transform (``matrix`` 2x3, None: identity) and
    horizontal flip, for its arrays (:meth:`apply`) and points (:meth:`apply_points`)."""

    size: int
    matrix: np.ndarray | None
    flip: bool

    def apply(self, *arrays: np.ndarray) -> list[np.ndarray]:
        """The transformed arrays, same shapes and dtypes; images replicate their border,
        masks (2-D) pad with 0."""
        out = list(arrays)
        if self.matrix is not None:
            out = [
                cv2.warpAffine(
                    a,
                    self.matrix,
                    (self.size, self.size),
                    flags=cv2.INTER_LINEAR,
                    # The face replicates into the border; masks must not grow.
                    borderMode=cv2.BORDER_REPLICATE if a.ndim == 3 else cv2.BORDER_CONSTANT,
                )
                for a in out
            ]
        if self.flip:
            out = [np.ascontiguousarray(a[:, ::-1]) for a in out]
        return out

    def apply_points(self, points: np.ndarray) -> np.ndarray:
        """(P, 2) pixel coordinates (pixel centres at integers) moved as :meth:`apply`
        moves the image under them."""
        out = np.asarray(points, dtype=np.float64)
        if self.matrix is not None:
            out = out @ self.matrix[:, :2].T + self.matrix[:, 2]
        if self.flip:
            out = np.column_stack([self.size - 1 - out[:, 0], out[:, 1]])
        return out.astype(np.float32)


def sample_transform(rng: np.random.Generator, cfg: AugmentConfig, size: int) -> SampleTransform:
    """Draw one sample's random rotation, zoom, shift and flip."""
    angle = rng.uniform(-cfg.rotation, cfg.rotation) if cfg.rotation > 0 else 0.0
    scale = 1.0 + (rng.uniform(-cfg.zoom, cfg.zoom) if cfg.zoom > 0 else 0.0)
    shift = rng.uniform(-cfg.shift, cfg.shift, size=2) * size if cfg.shift > 0 else np.zeros(2)
    flip = bool(cfg.flip and rng.random() < 0.5)
    matrix = None
    if angle or scale != 1.0 or shift.any():
        matrix = cv2.getRotationMatrix2D((size / 2, size / 2), angle, scale)
        matrix[:, 2] += shift
    return SampleTransform(size, matrix, flip)


def random_transform(
    rng: np.random.Generator, cfg: AugmentConfig, *arrays: np.ndarray
) -> list[np.ndarray]:
    """Apply one random similarity transform and flip to every array alike.

    Args:
        rng: the sample's generator.
        cfg: which parts are on and how strong.
        arrays: ``HxW`` or ``HxWxC`` arrays of the same size (image uint8, masks).

    Returns:
        the transformed arrays, same shapes and dtypes; borders are replicated for images.
    """
    return sample_transform(rng, cfg, arrays[0].shape[0]).apply(*arrays)


#: How many of the other side's nearest faces a sample's landmark warp picks from.
PARTNERS = 10


def closest_faces(
    landmarks: Sequence[np.ndarray | None],
    other: Sequence[np.ndarray | None],
    crop_sizes: tuple[int, int],
    k: int = PARTNERS,
) -> np.ndarray:
    """For each face, the indices of the ``k`` faces of ``other`` nearest to it in shape.

    Shapes are compared as the 68 landmarks in crop units (both sides are framed alike),
    by the Euclidean distance of the flattened point sets. Faces without landmarks are
    never picked, and get ``-1`` rows.

    Args:
        landmarks, other: per face, (68, 2) landmarks in crop pixels, or None.
        crop_sizes: the crop side of each set's files.
        k: neighbours per face (fewer when ``other`` has fewer faces with landmarks).

    Returns:
        (len(landmarks), k) int64.
    """

    def flat(points: Sequence[np.ndarray | None], size: int) -> tuple[np.ndarray, np.ndarray]:
        known = np.array([i for i, p in enumerate(points) if p is not None], dtype=np.int64)
        rows = np.stack([np.asarray(points[i], np.float32).reshape(-1) / size for i in known])
        return known, rows

    if not any(p is not None for p in other):
        raise FaceswapError(
            "--warp-to-landmarks needs the faces' landmarks on both sides (their "
            "alignments.json), and one side has none: train without it, or extract that side"
        )
    theirs_index, theirs = flat(other, crop_sizes[1])
    k = min(k, len(theirs_index))
    out = np.full((len(landmarks), k), -1, dtype=np.int64)
    if not any(p is not None for p in landmarks):
        return out
    mine_index, mine = flat(landmarks, crop_sizes[0])
    their_norms = (theirs**2).sum(axis=1)
    for start in range(0, len(mine), 1024):  # (1024, M) distances at a time
        chunk = mine[start : start + 1024]
        dist = (chunk**2).sum(axis=1)[:, None] + their_norms[None] - 2 * chunk @ theirs.T
        nearest = np.argpartition(dist, k - 1, axis=1)[:, :k]
        order = np.take_along_axis(dist, nearest, axis=1).argsort(axis=1)
        out[mine_index[start : start + 1024]] = theirs_index[
            np.take_along_axis(nearest, order, axis=1)
        ]
    return out


def warp_to_landmarks(image: np.ndarray, own: np.ndarray, partner: np.ndarray) -> np.ndarray:
    """Warp ``image`` so the points ``own`` land on ``partner`` (faceswap's warp to landmarks).

    The map is piecewise linear over a Delaunay triangulation of the partner's points and
    the image's corners and edge midpoints (which stay put), so the warp reaches across the
    whole face and fades to nothing at the border.

    Args:
        image: (S, S, C) or (S, S) array.
        own, partner: (P, 2) matching points in pixels of ``image``.

    Returns:
        the warped image, same shape and dtype; the border replicated where a point moves
        past it.
    """
    from scipy.interpolate import griddata

    size = image.shape[0]
    edge = size - 1
    anchors = np.array(
        [[0, 0], [edge / 2, 0], [edge, 0], [0, edge / 2], [edge, edge / 2], [0, edge],
         [edge / 2, edge], [edge, edge]], dtype=np.float64
    )  # fmt: skip
    # Points outside the crop (a jaw past its edge) are clipped: the map stays inside it.
    dst = np.clip(np.vstack([np.asarray(partner, np.float64), anchors]), 0, edge)
    src = np.clip(np.vstack([np.asarray(own, np.float64), anchors]), 0, edge)
    axis = np.arange(size, dtype=np.float64)
    grid_x, grid_y = np.meshgrid(axis, axis)
    # Where the output pixel sits among the partner's points, read the image at the same
    # place among its own points.
    mapped = griddata(dst, src, (grid_x, grid_y), method="linear")
    mapped = np.where(np.isnan(mapped), np.stack([grid_x, grid_y], axis=-1), mapped)
    map_x = mapped[..., 0].astype(np.float32)
    map_y = mapped[..., 1].astype(np.float32)
    return cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


class ColourAugment:
    """Albumentations pipelines for lighting/colour (both images) and blur/noise (input only)."""

    def __init__(self, cfg: AugmentConfig) -> None:
        import albumentations as A

        k = cfg.colour_strength
        self.colour = (
            A.Compose(
                [
                    A.RandomBrightnessContrast(0.2 * k, 0.2 * k, p=0.7),
                    A.HueSaturationValue(6 * k, 15 * k, 10 * k, p=0.5),
                    A.RandomGamma((round(100 - 20 * k), round(100 + 20 * k)), p=0.3),
                ]
            )
            if cfg.colour and k > 0
            else None
        )
        degrade = []
        if cfg.blur:
            degrade += [
                A.OneOf(
                    [A.GaussianBlur(blur_limit=(3, 5)), A.MotionBlur(blur_limit=(3, 5))],
                    p=0.2,
                ),
                A.GaussNoise(std_range=(0.01, 0.04), p=0.15),
            ]
        if cfg.downscale:
            degrade.append(
                A.Downscale(
                    scale_range=(0.25, 0.75),
                    interpolation_pair={"downscale": cv2.INTER_AREA, "upscale": cv2.INTER_LINEAR},
                    p=0.33,
                )
            )
        if cfg.jpeg:
            degrade.append(A.ImageCompression(quality_range=(30, 90), p=0.33))
        self.degrade = A.Compose(degrade) if degrade else None

    def __call__(self, rng: np.random.Generator, face: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(source, target)``: both re-lit alike, the source also degraded.

        Args:
            rng: the sample's generator (seeds albumentations for this call).
            face: RGB uint8 HxWx3.
        """
        target = face
        if self.colour is not None:
            self.colour.set_random_seed(int(rng.integers(2**31)))
            target = self.colour(image=face)["image"]
        source = target
        if self.degrade is not None:
            self.degrade.set_random_seed(int(rng.integers(2**31)))
            source = self.degrade(image=target)["image"]
        return source, target


def blur_out_background(images: torch.Tensor, masks: torch.Tensor, sigma: float) -> torch.Tensor:
    """Targets whose background is its own Gaussian blur (DeepFaceLab's blur out mask).

    Outside the mask each pixel becomes the blur of the background alone, normalised by
    the blurred background weight: the background near the face is smoothed without the
    face's colours running into it, and the face (mask 1) is left exactly as it was.

    Args:
        images: (N, C, H, W) targets in [0, 1].
        masks: (N, 1, H, W) face masks in [0, 1].
        sigma: blur in pixels (DFL: resolution / 128).
    """
    from faceswap.nets.losses import gaussian_blur

    background = 1.0 - masks.float()
    spread = gaussian_blur(images.float() * background, sigma)
    weight = gaussian_blur(background, sigma)
    filled = spread / torch.where(weight > 1e-6, weight, torch.ones_like(weight))
    return (images * masks + filled * background).to(images.dtype)


def random_warp(
    images: torch.Tensor,
    generator: torch.Generator,
    strength: float = 0.02,
    grid: int = 5,
    *,
    shard: tuple[int, int] = (0, 1),
) -> torch.Tensor:
    """The classic random warp: jitter a coarse grid, interpolate it smoothly, resample.

    Args:
        images: ``(N, C, H, W)`` float tensor on any device.
        generator: torch generator on ``images.device`` (seeded per step for reproducibility).
        strength: std-dev of the control-point jitter as a fraction of the image size.
        grid: control points per side (5 as in the original faceswap).
        shard: ``(rank, world)``: draw the jitter of the whole ``world * N`` global batch and
            use slice ``rank``, so every DDP rank warps its samples as one process would.

    Returns:
        warped images, same shape, dtype and device.
    """
    n, _, h, w = images.shape
    # Offsets in normalised [-1, 1] coordinates, so the strength is independent of resolution.
    rank, world = shard
    jitter = torch.randn(
        (world, n, 2, grid, grid), generator=generator, device=images.device, dtype=torch.float32
    )[rank] * (2.0 * strength)
    flow = F.interpolate(jitter, size=(h, w), mode="bicubic", align_corners=True)
    ys = torch.linspace(-1.0, 1.0, h, device=images.device)
    xs = torch.linspace(-1.0, 1.0, w, device=images.device)
    base_y, base_x = torch.meshgrid(ys, xs, indexing="ij")
    base = torch.stack((base_x, base_y), dim=-1).unsqueeze(0)
    sample_grid = base + flow.permute(0, 2, 3, 1)
    warped = F.grid_sample(
        images.float(), sample_grid, mode="bilinear", padding_mode="border", align_corners=True
    )
    return warped.to(images.dtype)

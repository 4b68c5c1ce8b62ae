"""The verify stage: is this video, image or image folder a faceswap output?

Looks for all three marks convert leaves (see :mod:`faceswap.provenance`): the provenance
tags in the container or the image, the sidecar manifest, and the invisible watermark in the
pixels of the swapped faces (:mod:`faceswap.watermark`). The tags and the manifest are gone
once a file is re-encoded or renamed by someone else; the watermark stays with the pixels
through a lossy re-encode or a resize, so it is read even when both are missing.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from faceswap.config import check_frame_limit
from faceswap.errors import FaceswapError
from faceswap.watermark import (
    ANALYSIS_HEIGHT,
    WatermarkReading,
    black_bars,
    read_watermark,
    read_watermark_reframed,
)

#: Frames with faces kept (at the analysis height) for the letterbox and off-centre readings
#: when the mark is not found where it was laid.
REFRAMED_FRAMES = 48
#: Frames that must all show the same black bars for them to count as bars.
BAR_FRAMES = 8

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VerifyConfig:
    """Settings of :func:`run_verify`.

    Attributes:
        input: a video, an image (PNG, TIFF, JPEG) or a folder of images.
        frames: read at most this many frames for the watermark, spread evenly over the
            input (0: every frame). More frames give surer answers and take longer.
        detector: face detector that places the faces (``auto``, ``dlib-hog``...); frames in
            which it finds none are searched in face-sized windows instead.
        device: torch device for torch detectors.
        rotate: also look for faces turned in the picture at these angles (see
            :func:`~faceswap.faces.rotation.parse_rotations`).
    """

    input: Path
    frames: int = 120
    detector: str = "dlib-hog"
    device: str = "auto"
    rotate: tuple[float, ...] | str = ()

    def __post_init__(self) -> None:
        from faceswap.faces.rotation import as_rotations

        check_frame_limit(self.frames)
        object.__setattr__(self, "rotate", as_rotations(self.rotate))


@dataclass(frozen=True)
class VerifyResult:
    """What :func:`run_verify` found.

    Attributes:
        path: the input.
        tags: provenance tags found in the file (or the first image of a folder holding any).
        manifest: the sidecar manifest beside the input, or None.
        watermark: the watermark reading over the frames read.
    """

    path: Path
    tags: dict[str, str]
    manifest: dict[str, Any] | None
    watermark: WatermarkReading

    @property
    def marked(self) -> bool:
        """Any of the three marks says the input is synthetic."""
        return (
            self.tags.get("synthetic") == "1" or self.manifest is not None or self.watermark.found
        )


def _image_tags(folder: Path) -> dict[str, str]:
    """The tags of the first image in ``folder`` that has any."""
    from faceswap.io.images import list_images
    from faceswap.provenance import read_provenance

    for path in list_images(folder):
        if tags := read_provenance(path):
            return tags
    return {}


def _small(image: np.ndarray, region: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
    """A frame and its face region at no more than the watermark's analysis height."""
    import cv2

    height, width = image.shape[:2]
    if height <= ANALYSIS_HEIGHT:
        return image, region
    size = (max(1, round(width * ANALYSIS_HEIGHT / height)), ANALYSIS_HEIGHT)
    small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    if region is not None:
        region = cv2.resize(region.astype(np.float32), size, interpolation=cv2.INTER_AREA)
    return small, region


def _read_again(
    reading: WatermarkReading,
    kept: list[tuple[np.ndarray, np.ndarray | None]],
    bars: tuple[int, int, int, int] | None,
) -> WatermarkReading:
    """The mark not found where it was laid: read the picture inside black bars (a
    letterboxed copy), then search it for an off-centre crop (a copy re-framed to 9:16...)."""
    if bars is not None:
        boxed = read_watermark(kept)
        if boxed.found:
            return dataclasses.replace(boxed, picture=bars)
    reframed = read_watermark_reframed(kept)
    if reframed.found:
        return dataclasses.replace(reframed, picture=bars)
    return reading


def run_verify(cfg: VerifyConfig) -> VerifyResult:
    """Read the provenance tags, manifest and watermark of ``cfg.input``.

    Raises:
        FaceswapError: a missing, empty or unreadable input, or an unknown detector.
    """
    from faceswap.faces.align import landmark_region
    from faceswap.faces.detectors import create_detector
    from faceswap.faces.rotation import with_rotations
    from faceswap.io.images import as_8bit, is_image_file, read_image
    from faceswap.io.video import open_source
    from faceswap.provenance import TOOL, read_manifest, read_provenance

    path = Path(cfg.input)
    if not path.exists():
        raise FaceswapError(f"{path}: no such file or folder; check the path")
    if path.is_file() and is_image_file(path):
        images: Iterator[np.ndarray] = iter([read_image(path, keep_16bit=True)])
        tags = read_provenance(path)
    else:
        source = open_source(path, deep=True)
        if source.frame_count == 0:
            raise FaceswapError(f"{path}: holds no frames; check the file")
        tags = read_provenance(path) if source.is_video else _image_tags(path)
        images = (frame.image for frame in source.iter_spread(cfg.frames))
    manifest = read_manifest(path)
    if manifest is not None and manifest.get("tool") != TOOL:
        manifest = None  # some other program's JSON beside the file
    detector = with_rotations(create_detector(cfg.detector, cfg.device), cfg.rotate)  # type: ignore[arg-type]

    first = list(itertools.islice(images, BAR_FRAMES))
    bars = black_bars(as_8bit(image) for image in first)
    kept: list[tuple[np.ndarray, np.ndarray | None]] = []

    def located() -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
        for image in itertools.chain(first, images):
            found = detector.detect(as_8bit(image))
            region = landmark_region(image.shape, found.landmarks) if len(found) else None
            if region is not None and len(kept) < REFRAMED_FRAMES:
                picture, inside = image, region
                if bars is not None:  # the picture inside the bars: read on its own below
                    top, bottom, left, right = bars
                    picture, inside = image[top:bottom, left:right], region[top:bottom, left:right]
                kept.append(_small(picture, inside))  # blind, the searches find nothing
            yield image, region

    reading = read_watermark(located())
    if not reading.found and kept:
        reading = _read_again(reading, kept, bars)
    log.info(
        "%s: watermark z %.1f over %d frames (%d inside faces)",
        path, reading.z, reading.frames, reading.faces,
    )  # fmt: skip
    return VerifyResult(path, tags, manifest, reading)

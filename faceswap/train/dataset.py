"""Training data: a folder of aligned face crops plus its ``alignments.json``.

:class:`FaceSet` indexes the crops that ``faceswap extract`` wrote and, from the alignments,
each crop's landmarks in crop pixels (for the face hull mask and the eye/mouth priority
regions). :class:`FaceDataset` turns a sample into augmented tensors, and
:class:`StreamSampler` decides which face comes at which position of an endless stream, so
that sampling depends only on ``(seed, side, position)``: workers, restarts and DDP ranks all
see a reproducible stream.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
import logging
import os
import struct
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from faceswap.errors import FaceswapError
from faceswap.faces.alignments import ALIGNMENTS_NAME as ALIGNMENTS_FILE
from faceswap.io.files import write_text_atomic
from faceswap.train.augment import (
    AugmentConfig,
    ColourAugment,
    SampleTransform,
    sample_transform,
    warp_to_landmarks,
)

if TYPE_CHECKING:
    from faceswap.faces.align import CropSpec

log = logging.getLogger(__name__)

#: Subfolder of a faces folder with masks painted or made elsewhere, one per crop, named
#: like it (``masks/frame_000012_0.png``): white is face, black is not (hands, hair,
#: glasses over the face; the background), grey is in between.
MASKS_DIR = "masks"
# iBUG 68-point indices of the regions that get extra loss weight.
EYES = (tuple(range(36, 42)), tuple(range(42, 48)))
MOUTH = (tuple(range(48, 60)),)


@dataclass(frozen=True)
class FaceSet:
    """The crops of one side (A or B) and their landmarks.

    Attributes:
        folder: the extract output folder.
        files: crop paths, sorted.
        landmarks: per file, (68, 2) float32 landmarks in crop pixels, or None when the
            alignments have no entry for it (the whole crop is then used as mask).
        crop: crop geometry from the alignments.
        crop_size: side of the square crops in pixels.
        digest: sha256 over the file names and sizes and the alignments file (identifies the
            data in the model card without hashing every image).
        sources: the folders given when several were merged into one set (``folder`` is
            then the first, where the decoded-face cache goes).
        user_masks: per file, its mask in the faces folder's :data:`MASKS_DIR`, or None
            (the landmark hull is used); empty when the set has none.
    """

    folder: Path
    files: tuple[Path, ...]
    landmarks: tuple[np.ndarray | None, ...]
    crop: CropSpec
    crop_size: int
    digest: str
    sources: tuple[Path, ...] = ()
    user_masks: tuple[Path | None, ...] = ()

    def __len__(self) -> int:
        return len(self.files)

    def user_mask(self, index: int) -> Path | None:
        """The mask file of face ``index``, or None."""
        return self.user_masks[index] if self.user_masks else None

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"folder": str(self.folder), "faces": len(self.files)}
        if self.sources:
            out["folders"] = [str(path) for path in self.sources]
        if self.user_masks:
            out["user_masks"] = sum(m is not None for m in self.user_masks)
        return {**out, "sha256": self.digest}


def yaw_proxy(landmarks: np.ndarray) -> float:
    """How far a face is turned left or right, from its 68 landmarks: the nose tip's offset
    from the middle of the jaw line as a fraction of the jaw's width (0 for a frontal face,
    about +-0.3 towards profile; the sign says which way)."""
    jaw_left, jaw_right, nose = landmarks[0, 0], landmarks[16, 0], landmarks[30, 0]
    width = max(float(jaw_right - jaw_left), 1e-6)
    return float((nose - (jaw_left + jaw_right) / 2) / width)


def uniform_yaw_weights(faces: FaceSet, sigma: float = 0.04) -> np.ndarray:
    """Sampling weights (summing to 1) that make every head turn about equally likely, as
    DeepFaceLab's ``uniform_yaw``: the few turned faces of mostly frontal footage come up
    as often as the frontal ones.

    Each face is weighted by the inverse density of its :func:`yaw_proxy` among the set's
    faces, the density taken with a Gaussian kernel of ``sigma`` (about 10 degrees of turn)
    rather than hard bins, so landmark jitter of near-frontal faces changes little and
    footage that is all frontal keeps about uniform sampling. Faces without landmarks count
    as frontal.
    """
    yaws = np.array([0.0 if lm is None else yaw_proxy(lm) for lm in faces.landmarks])
    step, reach = sigma / 8, 32  # histogram bins of sigma/8; the kernel spans +-4 sigma
    index = np.rint((yaws - yaws.min()) / step).astype(np.int64) + reach
    hist = np.bincount(index, minlength=int(index.max()) + reach + 1).astype(np.float64)
    kernel = np.exp(-0.5 * (np.arange(-reach, reach + 1) / 8.0) ** 2)
    density = np.convolve(hist, kernel, mode="same")[index]
    weights = 1.0 / density
    return weights / weights.sum()


def load_face_set(
    folder: Path | str | Sequence[Path | str], side: str, *, label: str | None = None
) -> FaceSet:
    """Index an extract output folder; refuse it with a clear message when it is unusable.

    A folder that ``faceswap extract`` wrote for a folder of videos holds a subfolder of
    faces per video: those are read together as one set (they must share the crop), and so
    are several folders given together (extract sessions of one person).

    Args:
        folder: folder holding face crops and ``alignments.json``, or subfolders that do;
            or several such folders.
        side: "A" or "B" (named in error messages as ``--a``/``--b``).
        label: what error messages call the folder instead (``faces folder``).
    """
    from faceswap.io.images import list_images

    if not isinstance(folder, (str, Path)):
        folders = [Path(f) for f in folder]
        if len(folders) != 1:
            if not folders:
                raise FaceswapError(f"--{side.lower()}: no faces folder given")
            if len({f.resolve() for f in folders}) < len(folders):
                raise FaceswapError(
                    f"--{side.lower()}: a folder is given twice; give each faces folder once"
                )
            sets = [load_face_set(f, side, label=label) for f in folders]
            merged = _merged_face_sets(folders[0], sets, f"--{side.lower()}")
            return dataclasses.replace(merged, sources=tuple(folders))
        folder = folders[0]
    folder = Path(folder)
    opt = label if label is not None else f"--{side.lower()}"
    if folder.is_file():  # a video or photo given where its extracted faces belong
        raise FaceswapError(
            f"{opt} {folder}: a file, not a faces folder; run `faceswap extract {folder} -o "
            "FACES` first and pass FACES"
        )
    if not folder.is_dir():
        raise FaceswapError(
            f"{opt} {folder}: no such folder; pass the output folder of `faceswap extract`"
        )
    from faceswap.sort import check_not_mid_sort

    check_not_mid_sort(folder, opt)  # its crops may all be under temporary names
    if list_images(folder):
        return _load_one_face_set(folder, opt)
    parts = [
        sub
        for sub in sorted(folder.iterdir())
        if sub.is_dir() and (sub / ALIGNMENTS_FILE).is_file() and list_images(sub)
    ]
    if not parts:
        raise FaceswapError(
            f"{opt} {folder}: no face images found; run `faceswap extract VIDEO -o {folder}` "
            "first or check the path"
        )
    return _merged_face_sets(folder, [_load_one_face_set(sub, opt) for sub in parts], opt)


def _merged_face_sets(folder: Path, sets: list[FaceSet], opt: str) -> FaceSet:
    """One FaceSet of the per-video subfolders of ``folder``."""
    first = sets[0]
    for other in sets[1:]:
        if (other.crop, other.crop_size) != (first.crop, first.crop_size):
            raise FaceswapError(
                f"{opt} {folder}: {first.folder.name} and {other.folder.name} were extracted "
                f"with different crops ({first.crop_size} px {first.crop.centering} "
                f"coverage {first.crop.coverage} against {other.crop_size} px "
                f"{other.crop.centering} coverage {other.crop.coverage}); re-extract them alike"
            )
    digest = hashlib.sha256()
    for part in sets:
        digest.update(f"{part.folder.name}:{part.digest}\n".encode())
    user_masks: tuple[Path | None, ...] = ()
    if any(part.user_masks for part in sets):
        user_masks = tuple(part.user_mask(i) for part in sets for i in range(len(part)))
    return FaceSet(
        folder=folder,
        files=tuple(f for part in sets for f in part.files),
        landmarks=tuple(lm for part in sets for lm in part.landmarks),
        crop=first.crop,
        crop_size=first.crop_size,
        digest=digest.hexdigest(),
        user_masks=user_masks,
    )


def _load_one_face_set(folder: Path, opt: str) -> FaceSet:
    from faceswap.faces.align import transform_points
    from faceswap.faces.alignments import load_alignments
    from faceswap.io.images import list_images
    from faceswap.sort import check_not_mid_sort

    check_not_mid_sort(folder, opt)
    files = list_images(folder)
    align_path = folder / ALIGNMENTS_FILE
    if not align_path.is_file():
        raise FaceswapError(
            f"{opt} {folder}: no {ALIGNMENTS_FILE} beside the faces (needed for masks and the "
            "crop geometry); extract the faces with `faceswap extract`"
        )
    alignments = load_alignments(align_path)
    by_name: dict[str, np.ndarray] = {}
    for frame in alignments.frames:
        for face in frame.faces:
            if face.crop_file:
                by_name[Path(face.crop_file).name] = transform_points(
                    np.asarray(face.landmarks, dtype=np.float32), np.asarray(face.matrix)
                ).astype(np.float32)
    sizes = {_image_size(p) for p in files}
    if len(sizes) != 1:
        raise FaceswapError(
            f"{opt} {folder}: face crops of different sizes {sorted(sizes)}; a faces folder "
            "must hold one extract run's crops: re-extract into an empty folder"
        )
    (width, height) = sizes.pop()
    if width != height:
        raise FaceswapError(
            f"{opt} {folder}: face crops are {width}x{height}, not square; these are not "
            "`faceswap extract` crops: re-extract the faces"
        )
    if alignments.crop.size != width:
        raise FaceswapError(
            f"{opt} {folder}: crops are {width} px but {ALIGNMENTS_FILE} says "
            f"{alignments.crop.size} px; the folder mixes runs: re-extract into an empty folder"
        )
    landmarks = tuple(by_name.get(p.name) for p in files)
    missing = sum(lm is None for lm in landmarks)
    if missing == len(files):
        raise FaceswapError(
            f"{opt} {folder}: none of the {len(files)} images is listed in {ALIGNMENTS_FILE}; "
            "the alignments belong to another folder: re-extract the faces"
        )
    if missing:
        log.warning(
            "%s: %d of %d faces are not in %s; they train with a full-crop mask",
            folder,
            missing,
            len(files),
            ALIGNMENTS_FILE,
        )
    digest = hashlib.sha256(align_path.read_bytes())
    for path in files:
        digest.update(f"{path.name}:{path.stat().st_size}\n".encode())
    user_masks = _user_masks(folder, files)
    for mask in user_masks:
        if mask is not None:  # painting more masks makes other training data
            digest.update(f"{MASKS_DIR}/{mask.name}:{mask.stat().st_size}\n".encode())
    return FaceSet(
        folder=folder,
        files=tuple(files),
        landmarks=landmarks,
        crop=alignments.crop,
        crop_size=width,
        digest=digest.hexdigest(),
        user_masks=user_masks,
    )


def _user_masks(folder: Path, files: list[Path]) -> tuple[Path | None, ...]:
    """Each crop's mask in ``folder/masks`` (matched by file stem), or () when none is."""
    from faceswap.io.images import list_images

    masks_dir = folder / MASKS_DIR
    if not masks_dir.is_dir():
        return ()
    by_stem = {path.stem: path for path in list_images(masks_dir)}
    masks = tuple(by_stem.get(path.stem) for path in files)
    matched = sum(m is not None for m in masks)
    if matched < len(by_stem):
        log.warning(
            "%s: %d of the %d masks match no face crop and are not used; name each mask like "
            "its crop (%s/%s.png)",
            masks_dir,
            len(by_stem) - matched,
            len(by_stem),
            MASKS_DIR,
            files[0].stem,
        )
    if matched:
        log.info("%s: %d of %d faces have their own mask", folder, matched, len(files))
    return masks if matched else ()


def _image_size(path: Path) -> tuple[int, int]:
    """(width, height) of an image; reads only the header of a PNG."""
    with open(path, "rb") as fh:
        head = fh.read(24)
    if head[:8] == b"\x89PNG\r\n\x1a\n" and len(head) >= 24:
        width, height = struct.unpack(">II", head[16:24])
        return int(width), int(height)
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise FaceswapError(f"{path}: unreadable image; delete it or re-extract the faces")
    return int(image.shape[1]), int(image.shape[0])


def _polygon_mask(points: np.ndarray, size: int) -> np.ndarray:
    mask = np.zeros((size, size), dtype=np.uint8)
    hull = cv2.convexHull(np.round(points).astype(np.int32))
    cv2.fillConvexPoly(mask, hull, 255)
    return mask


def _dilate_around(mask: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """``cv2.dilate(mask, kernel)`` computed over the mask's bounding box grown by the
    kernel's reach only: the same pixels (nothing farther from a set pixel can be set),
    3x cheaper for the small eye and mouth regions of a 256 px face."""
    x, y, w, h = cv2.boundingRect(mask)
    out = np.zeros_like(mask)
    if w == 0:
        return out
    reach = kernel.shape[0] // 2
    rows = slice(max(0, y - reach), min(mask.shape[0], y + h + reach))
    cols = slice(max(0, x - reach), min(mask.shape[1], x + w + reach))
    out[rows, cols] = cv2.dilate(mask[rows, cols], kernel)
    return out


def face_masks(landmarks: np.ndarray | None, crop_size: int, size: int) -> np.ndarray:
    """Face hull (raised over the forehead), eyes and mouth masks at ``size`` px as uint8
    ``(3, size, size)`` in {0, 255}.

    Args:
        landmarks: (68, 2) landmarks in crop pixels of a ``crop_size`` crop, or None (the whole
            crop counts as face, no priority regions).
    """
    if landmarks is None:
        out = np.zeros((3, size, size), dtype=np.uint8)
        out[0] = 255
        return out
    from faceswap.faces.align import HULL_FOREHEAD, hull_mask

    points = landmarks * (size / crop_size)
    # Raised over the forehead as convert's hull: the decoders learn what convert pastes.
    face = hull_mask(points, size, forehead=HULL_FOREHEAD)
    face = np.clip(np.round(face * 255.0), 0, 255).astype(np.uint8)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (max(3, size // 16) | 1,) * 2)
    eyes = np.zeros((size, size), dtype=np.uint8)
    for idx in EYES:
        eyes |= _polygon_mask(points[list(idx)], size)
    mouth = _polygon_mask(points[list(MOUTH[0])], size)
    # Eye and mouth outlines are thin; dilate so the brows and lips around them count too.
    return np.stack([face, _dilate_around(eyes, kernel), _dilate_around(mouth, kernel)])


#: In a :data:`MASKS_DIR`: the masks ``faceswap masks`` wrote (hulls, a mask model's), with
#: their hashes; one changed since (painted over) counts as painted.
GENERATED_MASKS = ".generated.json"


def _file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def generated_masks(masks_dir: Path) -> Mapping[str, Mapping[str, str]]:
    """The masks ``faceswap masks`` wrote in ``masks_dir``: name -> ``{"by": "hull" or
    "model NAME", "sha256": ...}`` (as written; see :func:`is_painted`). Read once while
    the file is unchanged: asking for each of 10,000 masks parses it once."""
    path = masks_dir / GENERATED_MASKS
    try:
        info = path.stat()
    except OSError:
        return MappingProxyType({})
    return _read_generated(str(path), (info.st_mtime_ns, info.st_size))


@functools.lru_cache(maxsize=32)
def _read_generated(path: str, stamp: tuple[int, int]) -> Mapping[str, Mapping[str, str]]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        return MappingProxyType(dict(data.get("masks", {})))
    except (OSError, ValueError, AttributeError):
        return MappingProxyType({})


def is_painted(mask: Path) -> bool:
    """Whether ``mask`` was made by hand (or elsewhere): not one ``faceswap masks`` wrote,
    or one it wrote that was changed since."""
    entry = generated_masks(mask.parent).get(mask.name)
    return entry is None or not mask.is_file() or entry.get("sha256") != _file_sha256(mask)


def write_masks(
    folder: Path | str,
    *,
    model_dir: Path | str | None = None,
    device: str = "auto",
    overwrite: bool = False,
) -> tuple[int, int]:
    """Write a mask for each crop of a faces folder to the :data:`MASKS_DIR` beside it, as
    a greyscale PNG of the crop's size: its landmark hull (as training uses it), a start to
    paint over; or with ``model_dir`` the mask a trained segmenter draws for it
    (``faceswap train-masks``).

    Without ``model_dir`` only crops without a mask get one; with it, also those whose mask
    this function wrote and nobody changed since (:func:`is_painted`), so painted masks are
    kept and the mask model's replace the hulls. ``overwrite`` replaces every mask.

    Returns:
        ``(written, kept)``.
    """
    from faceswap.io.images import write_image

    faces = load_face_set(folder, "A", label="faces folder")
    predictor = None
    if model_dir is not None:
        from faceswap.device import resolve_device
        from faceswap.train.segment import MaskPredictor

        predictor = MaskPredictor(model_dir, resolve_device(device))

    def replaceable(i: int) -> bool:
        mask = faces.user_mask(i)
        return overwrite or mask is None or (predictor is not None and not is_painted(mask))

    todo = [i for i in range(len(faces)) if replaceable(i)]
    by = "hull" if model_dir is None else f"model {Path(model_dir).name}"
    records: dict[Path, dict[str, dict[str, str]]] = {}
    for lo in range(0, len(todo), 32):
        part = todo[lo : lo + 32]
        if predictor is not None:
            crops = np.stack([read_face(faces.files[i], faces.crop_size) for i in part])
            masks = np.rint(predictor(crops) * 255).astype(np.uint8)
        else:
            size = faces.crop_size
            masks = np.stack([face_masks(faces.landmarks[i], size, size)[0] for i in part])
        for i, mask in zip(part, masks, strict=True):
            crop = faces.files[i]
            masks_dir = crop.parent / MASKS_DIR
            masks_dir.mkdir(exist_ok=True)
            target = write_image(faces.user_mask(i) or masks_dir / f"{crop.stem}.png", mask)
            if masks_dir not in records:
                records[masks_dir] = {k: dict(v) for k, v in generated_masks(masks_dir).items()}
            records[masks_dir][target.name] = {"by": by, "sha256": _file_sha256(target)}
    for masks_dir, record in records.items():
        data = {"schema_version": 1, "masks": dict(sorted(record.items()))}
        write_text_atomic(masks_dir / GENERATED_MASKS, json.dumps(data, indent=1))
    return len(todo), len(faces) - len(todo)


def mask_sheet(folder: Path | str, output: Path | str, *, count: int = 48, size: int = 96) -> int:
    """A PNG of up to ``count`` crops of a faces folder (spread over it) with their masks:
    what is not face tinted red, painted masks framed in green. For checking a mask model's
    masks before training on them. Returns the number of crops shown.

    Raises:
        FaceswapError: no crop has a mask, or ``output`` is not a PNG.
    """
    from faceswap.io.images import write_image

    output = Path(output)
    if output.suffix.lower() != ".png":
        raise FaceswapError(f"{output}: the sheet is a PNG; end the name with .png")
    faces = load_face_set(folder, "A", label="faces folder")
    masked = [i for i in range(len(faces)) if faces.user_mask(i) is not None]
    if not masked:
        raise FaceswapError(f"{folder}: no masks to show; run `faceswap masks {folder}` first")
    picks = [masked[int(k)] for k in np.linspace(0, len(masked) - 1, min(count, len(masked)))]
    tiles = []
    for i in dict.fromkeys(picks):  # in order, once each
        mask_path = faces.user_mask(i)
        assert mask_path is not None
        face = read_face(faces.files[i], size).astype(np.float32)
        alpha = read_user_mask(mask_path, size).astype(np.float32)[..., None] / 255.0
        red = np.array([255.0, 0.0, 0.0], np.float32)
        tile = face * alpha + (0.5 * face + 0.5 * red) * (1 - alpha)
        tile = np.clip(tile, 0, 255).astype(np.uint8)
        if is_painted(mask_path):
            cv2.rectangle(tile, (0, 0), (size - 1, size - 1), (0, 255, 0), 2)
        tiles.append(tile)
    columns = 8
    rows = -(-len(tiles) // columns)
    sheet = np.zeros((rows * size, min(columns, len(tiles)) * size, 3), np.uint8)
    for k, tile in enumerate(tiles):
        r, c = divmod(k, columns)
        sheet[r * size : (r + 1) * size, c * size : (c + 1) * size] = tile
    write_image(output, sheet)
    return len(tiles)


def read_user_mask(path: Path, size: int) -> np.ndarray:
    """A mask file as uint8 (size, size), 255 = face: its grey level (colour images are
    converted to grey, 16-bit ones scaled)."""
    mask = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE | cv2.IMREAD_ANYDEPTH)
    if mask is None:
        raise FaceswapError(
            f"{path}: unreadable mask; save it as a greyscale PNG (white = face) or delete it"
        )
    if mask.dtype == np.uint16:
        mask = (mask >> 8).astype(np.uint8)
    if mask.shape != (size, size):
        interp = cv2.INTER_AREA if mask.shape[0] > size else cv2.INTER_LINEAR
        mask = cv2.resize(mask, (size, size), interpolation=interp)
    return mask


def read_face(path: Path, size: int) -> np.ndarray:
    """RGB uint8 (size, size, 3), resized with area filtering when shrinking."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise FaceswapError(f"{path}: unreadable image; delete it or re-extract the faces")
    if image.shape[0] != size:
        interp = cv2.INTER_AREA if image.shape[0] > size else cv2.INTER_CUBIC
        image = cv2.resize(image, (size, size), interpolation=interp)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


#: Folder inside a faces folder that holds its decoded-face caches.
CACHE_DIR = ".faceswap-cache"


def face_cache(faces: FaceSet, size: int) -> Path | None:
    """Every face of ``faces`` decoded and resized to ``size`` once, as a uint8
    (N, size, size, 3) RGB ``.npy`` in the faces folder, reused while the faces are unchanged;
    (N, size, size, 4) when faces have masks of their own, the mask in the 4th channel.

    Reading the PNG crops is most of a sample's cost (1.1 of 1.8 ms at 64 px, 1.1 of 2.1 ms
    at 128 px on one core): from this file one core delivered 2206 samples/s at 64 px and
    1186 at 128 px, against 565 and 480 from 256 px crops, and the operating system's page
    cache shares the file between the workers. It takes N x size x size x 3 bytes (10,000
    faces at 128 px: 492 MB). Built with the same :func:`read_face` as the uncached path, so
    samples are identical either way; written to a temporary file and renamed. Returns None
    (training then reads the crops) when the folder cannot be written.
    """
    key = hashlib.sha256(f"{faces.digest}:{size}".encode())
    for path in faces.files:
        key.update(f"{path.stat().st_mtime_ns}\n".encode())
    # With masks of their own, each face's mask rides along as a 4th channel (0 where a
    # face has none: the hull is drawn from its landmarks).
    for mask in faces.user_masks:
        key.update(f"{mask.stat().st_mtime_ns if mask else 0}\n".encode())
    folder = faces.folder / CACHE_DIR
    target = folder / f"faces-{size}px-{key.hexdigest()[:20]}.npy"
    shape = (len(faces), size, size, 4 if faces.user_masks else 3)
    if target.is_file():
        try:
            cached = np.load(target, mmap_mode="r")
            if cached.shape == shape and cached.dtype == np.uint8:
                return target
        except (OSError, ValueError):
            pass  # unreadable: rebuilt below
    try:
        folder.mkdir(exist_ok=True)
        tmp = folder / f".{target.name}.{os.getpid()}.tmp"
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
    except OSError as exc:
        log.info("%s: no face cache (%s); training reads the crops", faces.folder, exc)
        return None
    try:
        for i, path in enumerate(faces.files):
            out[i, ..., :3] = read_face(path, size)
            mask = faces.user_mask(i)
            if shape[-1] == 4:
                out[i, ..., 3] = read_user_mask(mask, size) if mask is not None else 0
        out.flush()
        del out
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    for stale in folder.glob(f"faces-{size}px-*.npy"):  # caches of earlier face sets
        if stale != target:
            # Still open elsewhere (Windows) is fine: a later run removes it.
            with contextlib.suppress(OSError):
                stale.unlink(missing_ok=True)
    return target


def _colour_transferred(
    mode: str, face: np.ndarray, reference: np.ndarray, hull: np.ndarray
) -> np.ndarray:
    """uint8 ``face`` with the colours of ``reference`` (both RGB SxSx3) by colour ``mode``."""
    from faceswap.convert.colour import transfer_colour

    out = transfer_colour(mode, face / np.float32(255), reference / np.float32(255), hull / 255.0)
    return np.rint(out * 255).astype(np.uint8)


class FaceDataset(Dataset):
    """Augmented samples of one face set, indexed by ``(face index, sample seed)``.

    A sample is a dict of uint8 tensors (cast to float on the training device, which keeps
    host-to-device copies 4x smaller):
        ``source`` (3, S, S): the input before the random warp (re-lit, maybe blurred);
        ``target`` (3, S, S): what the decoder must draw (re-lit alike, sharp);
        ``masks`` (3, S, S): face hull, eyes, mouth in {0, 255}; where the face has its own
        mask (:data:`MASKS_DIR`) that mask in place of the hull (0-255), and the eyes and
        mouth only inside it.

    With ``augment.colour_transfer`` on and a ``colour_ref`` (the A side's dataset, for B),
    each face first takes the colours of a random reference face (drawn from the sample's
    seed), measured inside its landmark hull.

    With ``augment.landmark_warp`` and ``partners`` (:class:`LandmarkPartners`), the source
    is warped onto the landmarks of one of the face's partners of the other side, drawn
    from the sample's seed after everything else (the target is the one without it).
    """

    def __init__(
        self,
        faces: FaceSet,
        size: int,
        augment: AugmentConfig,
        cache: Path | None = None,
        colour_ref: FaceDataset | None = None,
        partners: LandmarkPartners | None = None,
    ) -> None:
        self.faces = faces
        self.partners = partners if augment.landmark_warp else None
        self.size = size
        self.augment = augment
        self.cache = cache  # from :func:`face_cache`; mapped lazily, once per worker
        self.colour_ref = colour_ref if augment.colour_transfer != "none" else None
        self._colour: ColourAugment | None = None
        self._cached: np.ndarray | None = None

    def __getstate__(self) -> dict[str, Any]:
        # Workers are spawned: each maps the cache file itself rather than receiving a copy.
        return {**self.__dict__, "_cached": None, "_colour": None}

    def _read(self, index: int) -> np.ndarray:
        if self.cache is None:
            return read_face(self.faces.files[index], self.size)
        if self._cached is None:
            self._cached = np.load(self.cache, mmap_mode="r")
        return np.array(self._cached[index, ..., :3])

    def _read_mask(self, index: int, path: Path) -> np.ndarray:
        """The face's own mask: from the cache's 4th channel, else from its file."""
        if self.cache is not None:
            if self._cached is None:
                self._cached = np.load(self.cache, mmap_mode="r")
            if self._cached.shape[-1] == 4:
                return np.array(self._cached[index, ..., 3])
        return read_user_mask(path, self.size)

    def __len__(self) -> int:
        return len(self.faces)

    def __getitem__(self, key: tuple[int, int]) -> dict[str, torch.Tensor]:
        index, seed = key
        rng = np.random.default_rng(seed)
        face = self._read(index)
        # Recomputed per sample: cheaper than caching 3xSxS bytes per face in every worker.
        masks = face_masks(self.faces.landmarks[index], self.faces.crop_size, self.size)
        user_mask = self.faces.user_mask(index)
        if user_mask is not None:
            masks[0] = self._read_mask(index, user_mask)
            # An eye behind a hand is not the eye to weigh.
            np.minimum(masks[1:], masks[0], out=masks[1:])
        if self.colour_ref is not None:
            reference = self.colour_ref._read(int(rng.integers(len(self.colour_ref))))
            face = _colour_transferred(self.augment.colour_transfer, face, reference, masks[0])
        transform = sample_transform(rng, self.augment, self.size)
        face, masks_hwc = transform.apply(face, np.ascontiguousarray(masks.transpose(1, 2, 0)))
        if self._colour is None:  # built lazily: one per worker process
            self._colour = ColourAugment(self.augment)
        source, target = self._colour(rng, face)
        if self.partners is not None:
            source = self._landmark_warped(rng, index, source, transform)
        return {
            "source": torch.from_numpy(np.ascontiguousarray(source.transpose(2, 0, 1))),
            "target": torch.from_numpy(np.ascontiguousarray(target.transpose(2, 0, 1))),
            "masks": torch.from_numpy(np.ascontiguousarray(masks_hwc.transpose(2, 0, 1))),
        }

    def _landmark_warped(
        self, rng: np.random.Generator, index: int, source: np.ndarray, transform: SampleTransform
    ) -> np.ndarray:
        assert self.partners is not None
        own = self.faces.landmarks[index]
        choices = self.partners.indices[index]
        if own is None or choices[0] < 0:
            return source
        partner = self.partners.landmarks[int(choices[rng.integers(len(choices))])]
        own_px = transform.apply_points(own * (self.size / self.faces.crop_size))
        partner_px = transform.apply_points(partner * self.size)
        return warp_to_landmarks(source, own_px, partner_px)


@dataclass(frozen=True)
class LandmarkPartners:
    """The other side's faces a face's landmark warp may take the shape of.

    Attributes:
        indices: (N, k) indices into ``landmarks`` per face of this side (-1: none).
        landmarks: (M, 68, 2) float32 landmarks of the other side in crop units (0-1),
            NaN for faces without landmarks (never among the indices).
    """

    indices: np.ndarray
    landmarks: np.ndarray

    @classmethod
    def between(cls, faces: FaceSet, other: FaceSet) -> LandmarkPartners:
        """Each face of ``faces``'s :func:`~faceswap.train.augment.closest_faces` in ``other``."""
        from faceswap.train.augment import closest_faces

        indices = closest_faces(
            faces.landmarks, other.landmarks, (faces.crop_size, other.crop_size)
        )
        unit = np.full((len(other), 68, 2), np.nan, dtype=np.float32)
        for i, points in enumerate(other.landmarks):
            if points is not None:
                unit[i] = np.asarray(points, np.float32) / other.crop_size
        return cls(indices, unit)


class StreamSampler(Sampler):
    """An endless, resumable stream of ``(face index, sample seed)`` for one side.

    Position ``p`` of the stream is the ``p % n``-th entry of the permutation for epoch
    ``p // n``, seeded by ``(seed, side, epoch)``; its sample seed is derived from
    ``(seed, side, p)``. Under DDP each rank takes its own slice of every global batch:
    step ``t`` of rank ``r`` reads positions ``(t * world + r) * batch + [0, batch)``.

    Args:
        n: number of faces.
        batch: per-rank batch size.
        seed: run seed.
        side: 0 for A, 1 for B.
        start_step: first training step to produce (the resumed iteration).
        rank, world: DDP rank and world size.
        weights: per-face sampling probabilities (:func:`uniform_yaw_weights`); each epoch
            is then ``n`` draws with replacement, seeded like the permutation.
    """

    def __init__(
        self,
        n: int,
        batch: int,
        seed: int,
        side: int,
        start_step: int = 0,
        rank: int = 0,
        world: int = 1,
        weights: np.ndarray | None = None,
    ) -> None:
        self.n, self.batch, self.seed, self.side = n, batch, seed, side
        self.start_step, self.rank, self.world = start_step, rank, world
        self.weights = weights
        self._perm_epoch = -1
        self._perm = np.arange(n)

    def __len__(self) -> int:  # endless; DataLoader only needs a length for progress display
        return 2**62

    def item(self, position: int) -> tuple[int, int]:
        epoch, offset = divmod(position, self.n)
        if epoch != self._perm_epoch:
            rng = np.random.default_rng([self.seed, self.side, epoch])
            if self.weights is None:
                self._perm = rng.permutation(self.n)
            else:
                self._perm = rng.choice(self.n, size=self.n, p=self.weights)
            self._perm_epoch = epoch
        sample_seed = int(
            np.random.default_rng([self.seed, self.side, position, 7]).integers(2**63)
        )
        return int(self._perm[offset]), sample_seed

    def __iter__(self) -> Iterator[tuple[int, int]]:
        step = self.start_step
        while True:
            first = (step * self.world + self.rank) * self.batch
            for position in range(first, first + self.batch):
                yield self.item(position)
            step += 1

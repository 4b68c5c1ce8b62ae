"""The sort stage: order a faces folder for review, and thin it to its best faces.

Extract keeps every face it finds: blurred ones, other people, faces cut by the frame edge,
thousands of near-identical frontal frames. Reviewing them is easier in an order that puts
the ones to delete together, as deepfakes/faceswap's ``sort`` tool and DeepFaceLab's
``data_src sort`` do. :func:`run_sort` renames the crops to ``<rank>_<original name>`` (their
masks in ``masks/`` alike) so any file browser shows them in that order, and rewrites the
alignments file to the new names, so training, convert and ``masks`` keep every face's
landmarks. The original names are kept in the alignments file: ``--by original`` restores
them. ``keep`` moves the faces ranked after the first ``keep`` into ``trash/`` (a face whose
crop is missing counts as deleted everywhere; moving it back restores it).

A folder holding a faces folder per video is sorted as one set (one order, ranks counted
across the videos), each video's folder renamed in place.

Renaming thousands of files cannot be one atomic step. A journal (``.sort-journal.json``)
is written first and the renames run in two phases through temporary names; an interrupted
sort is finished by the next ``faceswap sort`` of the folder, and training refuses the folder
until then.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from faceswap.errors import FaceswapError
from faceswap.faces.alignments import (
    ALIGNMENTS_NAME,
    Alignments,
    FaceRecord,
    FrameRecord,
    load_alignments,
    save_alignments,
)
from faceswap.registry import Registry

log = logging.getLogger(__name__)

JOURNAL = ".sort-journal.json"
STAGED_ALIGNMENTS = ".sort-alignments.json"
TRASH_DIR = "trash"
#: Where the alignments file keeps what sort did: ``{"by": method, "original": {name: name}}``.
EXTRA_KEY = "sort"


@dataclass(frozen=True)
class FaceInfo:
    """What the sort methods know of one face.

    Attributes:
        name: the crop's file name.
        path: the crop file.
        landmarks: (68, 2) float32 in crop pixels.
        matrix: (2, 3) affine frame -> crop.
        frame_size: ``(width, height)`` of the source frames.
        descriptor: dlib identity descriptor from extract, or None.
        crop_size: side of the crop in pixels.
    """

    name: str
    path: Path
    landmarks: np.ndarray
    matrix: np.ndarray
    frame_size: tuple[int, int]
    descriptor: np.ndarray | None
    crop_size: int = 256


@dataclass(frozen=True)
class SortMethod:
    """A named order of faces: a measure of each face, then an arrangement of the measures.

    Attributes:
        describe: the order in words (``sharpest first``), for help and reports.
        measure: one face -> what the order needs of it (a score, a descriptor...); run on
            every face, in threads (image decoding and OpenCV release the GIL).
        arrange: the measures of all faces -> (positions in the new order, each face's
            score in that order).
    """

    describe: str
    measure: Callable[[FaceInfo], Any]
    arrange: Callable[[list[Any]], tuple[np.ndarray, np.ndarray]]
    processes: bool = False

    def order(
        self, faces: Sequence[FaceInfo], progress: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        """Measure every face (with a progress bar when asked) and arrange them; on
        threads, or with ``processes`` (a measure that holds the GIL, as dlib's network
        does) on a process per core once there are enough faces to pay for starting them."""
        from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
        from multiprocessing import get_context

        cores = os.cpu_count() or 1
        pool: Executor
        chunk = 1
        if self.processes and cores > 1 and len(faces) >= PROCESSES_FROM:
            # Spawned, not forked: a fork copies the locks other threads hold at that moment.
            pool = ProcessPoolExecutor(max_workers=cores, mp_context=get_context("spawn"))
            chunk = max(1, min(32, len(faces) // (4 * cores)))
        else:
            pool = ThreadPoolExecutor(max_workers=max(1, min(4, cores)), thread_name_prefix="sort")
        with pool:
            measured = pool.map(self.measure, faces, chunksize=chunk)
            if progress:
                from tqdm import tqdm

                measured = tqdm(measured, total=len(faces), desc="measuring", unit="face",
                                leave=False, dynamic_ncols=True)  # fmt: skip
            return self.arrange(list(measured))


#: Faces from which a ``processes`` measure runs on a process per core (each takes about
#: a second to start and load its model).
PROCESSES_FROM = 64

SORT_METHODS: Registry[SortMethod] = Registry("sort method")


@dataclass(frozen=True)
class SortConfig:
    """Settings of :func:`run_sort`.

    Attributes:
        faces: a ``faceswap extract`` output folder (crops and ``alignments.json``).
        by: a name in :data:`SORT_METHODS`, or ``original`` to restore extract's names.
        keep: move all but the first ``keep`` faces of the new order to ``trash/`` (None:
            keep all).
        reverse: the opposite order.
        dry_run: work out the order and report it; change nothing.
        progress: show a progress bar while the faces are measured.
    """

    faces: Path
    by: str = "blur"
    keep: int | None = None
    reverse: bool = False
    dry_run: bool = False
    progress: bool = False

    def __post_init__(self) -> None:
        if self.by != "original":
            SORT_METHODS.get(self.by)  # fails listing the valid names
        if self.keep is not None and self.keep < 1:
            raise FaceswapError(f"--keep {self.keep}: keep at least 1 face")
        if self.by == "original" and (self.keep is not None or self.reverse):
            raise FaceswapError("--by original restores extract's names; drop --keep/--reverse")


@dataclass(frozen=True)
class SortResult:
    """What :func:`run_sort` did.

    Attributes:
        folder: the faces folder.
        by: the method.
        order: ``(new name, score)`` of each ranked face, in the new order (trashed ones
            included, last).
        renamed: crops renamed (masks not counted).
        trashed: crops moved to ``trash/``.
        unlisted: crops not in the alignments file, left as they were.
        finished_interrupted: an earlier, interrupted sort of the folder was finished first.
    """

    folder: Path
    by: str
    order: tuple[tuple[str, float], ...]
    renamed: int
    trashed: int
    unlisted: tuple[str, ...] = ()
    finished_interrupted: bool = False


# ---- the methods -------------------------------------------------------------------------


def _read_gray(path: Path) -> np.ndarray:
    from faceswap.io.images import as_8bit, read_image

    return cv2.cvtColor(as_8bit(read_image(path)), cv2.COLOR_RGB2GRAY)


def _hull(face: FaceInfo, shape: tuple[int, ...]) -> np.ndarray:
    from faceswap.faces.align import landmark_region

    return landmark_region(shape, face.landmarks[None], growth=0.0)


def sharpness(face: FaceInfo) -> float:
    """Variance of the Laplacian inside the landmark hull of the crop: fine detail (blurred
    and motion-blurred faces score low)."""
    from faceswap.evaluate import detail

    gray = _read_gray(face.path)
    return detail(gray, _hull(face, gray.shape))


def pitch_proxy(landmarks: np.ndarray) -> float:
    """How far a face is tilted up or down: the nose tip's height between the eyes and the
    chin, as a share of that span (about 0.4 frontal; larger looking down, smaller up)."""
    eyes = float(landmarks[36:48, 1].mean())
    span = max(float(landmarks[8, 1]) - eyes, 1e-6)
    return (float(landmarks[30, 1]) - eyes) / span


def face_size(face: FaceInfo) -> float:
    """The face's width in source-frame pixels (the crop's side over the crop's scale)."""
    scale = float(np.sqrt(abs(np.linalg.det(face.matrix[:, :2]))))
    width = float(np.ptp(face.landmarks[:, 0]))
    return width / max(scale, 1e-9)


def outside_share(face: FaceInfo, crop_size: int) -> float:
    """The share of the crop that lies outside the source frame (extract fills it black)."""
    from faceswap.faces.align import invert_affine

    grid = (np.arange(16, dtype=np.float64) + 0.5) * crop_size / 16
    xs, ys = np.meshgrid(grid, grid)
    points = np.stack([xs.ravel(), ys.ravel(), np.ones(xs.size)], axis=1)
    frame = points @ invert_affine(face.matrix).T
    width, height = face.frame_size
    inside = (frame[:, 0] >= 0) & (frame[:, 0] < width) & (frame[:, 1] >= 0)
    inside &= frame[:, 1] < height
    return float(1.0 - inside.mean())


def _by_score(scores: Sequence[float], descending: bool) -> tuple[np.ndarray, np.ndarray]:
    values = np.asarray(scores, np.float64)
    # A stable sort keeps extract's order among equal scores.
    order = np.argsort(-values if descending else values, kind="stable")
    return order, values[order]


def _scored(describe: str, score: Callable[[FaceInfo], float], descending: bool) -> SortMethod:
    return SortMethod(describe, score, lambda scores: _by_score(scores, descending))


def descriptor(face: FaceInfo) -> np.ndarray:
    """The face's identity descriptor: extract's where it kept one, else computed on the
    crop (dlib's model needs the whole face, which the crop holds)."""
    if face.descriptor is not None:
        return np.asarray(face.descriptor, np.float32)
    from faceswap.faces.identity import face_descriptors
    from faceswap.io.images import as_8bit, read_image

    return face_descriptors(as_8bit(read_image(face.path)), face.landmarks[None])[0]


def _by_identity(descriptors: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Nearest the set's typical face first: the person most of the crops show, then those
    less like them, other people (distance 0.6 and more) last."""
    from faceswap.faces.identity import descriptor_distance

    if not descriptors:
        return np.zeros(0, np.int64), np.zeros(0)
    stacked = np.stack(descriptors)
    centre = np.median(stacked, axis=0)
    return _by_score(descriptor_distance(stacked, centre)[:, 0], descending=False)


#: Pose bins of the ``best`` order: yaw across, pitch up/down.
BEST_YAW_BINS = 9
BEST_PITCH_BINS = 3


def _pose_and_sharpness(face: FaceInfo) -> tuple[float, float, float]:
    return _yaw(face), pitch_proxy(face.landmarks), sharpness(face)


def _best(measures: list[tuple[float, float, float]]) -> tuple[np.ndarray, np.ndarray]:
    """Poses spread evenly, the sharpest of each pose first, as DeepFaceLab's "best faces":
    the faces are binned by yaw and pitch and the order takes the sharpest remaining face of
    each bin in turn, so the first N of it (``--keep N``) cover every head turn the footage
    has instead of N near-identical frontal frames. Scores are sharpness."""
    if not measures:
        return np.zeros(0, np.int64), np.zeros(0)
    values = np.asarray(measures, np.float64)
    poses, sharp = values[:, :2], values[:, 2]

    def bins(column: np.ndarray, count: int) -> np.ndarray:
        lo, hi = float(column.min()), float(column.max())
        if hi - lo < 1e-9:
            return np.zeros(len(column), np.int64)
        return np.minimum(((column - lo) / (hi - lo) * count).astype(np.int64), count - 1)

    cell = bins(poses[:, 0], BEST_YAW_BINS) * BEST_PITCH_BINS + bins(poses[:, 1], BEST_PITCH_BINS)
    queues = [sorted(np.flatnonzero(cell == c), key=lambda i: -sharp[i]) for c in np.unique(cell)]
    order: list[int] = []
    for depth in range(max(len(q) for q in queues)):
        # Within one round, sharper faces first, so a cut inside a round drops blurrier ones.
        round_ = [q[depth] for q in queues if depth < len(q)]
        order += sorted(round_, key=lambda i: -sharp[i])
    picked = np.asarray(order, np.int64)
    return picked, sharp[picked]


def _yaw(face: FaceInfo) -> float:
    from faceswap.train.dataset import yaw_proxy

    return yaw_proxy(face.landmarks)


def _pitch(face: FaceInfo) -> float:
    return pitch_proxy(face.landmarks)


def _black(face: FaceInfo) -> float:
    return outside_share(face, face.crop_size)


def _register() -> None:
    SORT_METHODS.add("blur", _scored("sharpest first, blurred last", sharpness, True))
    SORT_METHODS.add("yaw", _scored("head turned one way to the other", _yaw, False))
    SORT_METHODS.add("pitch", _scored("looking up to looking down", _pitch, False))
    SORT_METHODS.add("size", _scored("largest in the frame first", face_size, True))
    SORT_METHODS.add("black", _scored("least outside the frame first", _black, False))
    SORT_METHODS.add(
        "face",
        SortMethod(
            "the main person first, other people last", descriptor, _by_identity, processes=True
        ),
    )
    SORT_METHODS.add(
        "best",
        SortMethod("every pose, sharpest first (use with --keep)", _pose_and_sharpness, _best),
    )


_register()


# ---- renaming ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Move:
    old: str
    tmp: str
    new: str


def _apply_journal(folder: Path) -> None:
    """Carry out the journal of a sort: both rename phases (each idempotent), then the staged
    alignments file, then remove the journal. Runs a fresh sort and finishes a cut-short one."""
    journal_path = folder / JOURNAL
    journal = json.loads(journal_path.read_text(encoding="utf-8"))
    moves = [_Move(*m) for m in journal["moves"]]
    if journal["phase"] == 1:
        for m in moves:
            if (folder / m.old).exists() and not (folder / m.tmp).exists():
                os.replace(folder / m.old, folder / m.tmp)
        journal["phase"] = 2
        _write_json(journal_path, journal)
    for m in moves:
        if (folder / m.tmp).exists():
            (folder / m.new).parent.mkdir(parents=True, exist_ok=True)
            os.replace(folder / m.tmp, folder / m.new)
    staged = folder / STAGED_ALIGNMENTS
    if staged.exists():
        os.replace(staged, folder / ALIGNMENTS_NAME)
    for rel, content in journal.get("generated", {}).items():
        _write_json(folder / rel, content)
    journal_path.unlink()


def _write_json(path: Path, data: Any) -> None:
    from faceswap.io.files import write_text_atomic

    write_text_atomic(path, json.dumps(data, indent=1))


def check_not_mid_sort(folder: Path, opt: str) -> None:
    """Refuse a faces folder that an interrupted sort left half-renamed."""
    if (folder / JOURNAL).exists():
        raise FaceswapError(
            f"{opt} {folder}: an interrupted `faceswap sort` left its faces half-renamed; run "
            f"`faceswap sort {folder}` to finish it"
        )


def _faces_of(folder: Path, al: Alignments) -> tuple[list[FaceInfo], list[str]]:
    from faceswap.faces.align import transform_points
    from faceswap.io.images import list_images

    present = {p.name: p for p in list_images(folder)}
    faces: list[FaceInfo] = []
    for frame in al.frames:
        for rec in frame.faces:
            name = Path(rec.crop_file).name if rec.crop_file else ""
            if name in present:
                matrix = np.asarray(rec.matrix, np.float64)
                faces.append(
                    FaceInfo(
                        name=name,
                        path=present.pop(name),
                        landmarks=transform_points(
                            np.asarray(rec.landmarks, np.float32), matrix
                        ).astype(np.float32),
                        matrix=matrix,
                        frame_size=(al.width, al.height),
                        descriptor=rec.descriptor,
                        crop_size=al.crop.size,
                    )
                )
    return faces, sorted(present)


@dataclass
class _Part:
    """One faces folder (a video's, when the input holds a faces folder per video)."""

    folder: Path
    alignments: Alignments
    faces: list[FaceInfo]
    unlisted: list[str]
    originals: dict[str, str]


def _part_folders(root: Path) -> list[Path]:
    """``[root]`` for a faces folder, or its per-video faces folders."""

    if root.is_file():
        raise FaceswapError(f"{root}: a file, not a faces folder; pass `faceswap extract -o`")
    if not root.is_dir():
        raise FaceswapError(f"{root}: no such folder; pass the output folder of extract")
    if (root / ALIGNMENTS_NAME).is_file():
        parts = [root]
    else:
        parts = [s for s in sorted(root.iterdir()) if (s / ALIGNMENTS_NAME).is_file()]
        if not parts:
            raise FaceswapError(
                f"{root}: no {ALIGNMENTS_NAME}; pass a folder `faceswap extract` wrote"
            )
    return parts


def _check_crops(root: Path, parts: list[Path]) -> None:
    from faceswap.io.images import list_images

    if not any(list_images(part) for part in parts):
        raise FaceswapError(f"{root}: no face crops to sort (they may all be in {TRASH_DIR}/)")


def _load_part(folder: Path) -> _Part:
    check_not_mid_sort(folder, "faces folder")
    al = load_alignments(folder / ALIGNMENTS_NAME)
    faces, unlisted = _faces_of(folder, al)
    originals = dict(al.extra.get(EXTRA_KEY, {}).get("original", {}))
    return _Part(folder, al, faces, unlisted, originals)


def _mask_files(folder: Path) -> dict[str, Path]:
    from faceswap.io.images import list_images
    from faceswap.train.dataset import MASKS_DIR

    masks = folder / MASKS_DIR
    return {p.stem: p for p in list_images(masks)} if masks.is_dir() else {}


def run_sort(cfg: SortConfig) -> SortResult:
    """Sort (rename) the crops of a faces folder by ``cfg.by``; see the module docstring.

    A folder holding a faces folder per video (``faceswap extract takes/ -o faces``) is
    sorted as one set: one order over all its faces, ranks counted across the videos, and
    ``keep`` the first ``keep`` of them all; each video's folder keeps its own crops,
    alignments and journal.

    Raises:
        FaceswapError: not a faces folder, no crops, an unknown method, a name clash.
    """
    root = Path(cfg.faces)
    folders = _part_folders(root)
    finished = False
    for folder in folders:
        if (folder / JOURNAL).exists() and not cfg.dry_run:
            log.warning("%s: finishing an interrupted sort first", folder)
            _apply_journal(folder)
            finished = True
    _check_crops(root, folders)
    parts = [_load_part(folder) for folder in folders]
    owner = [k for k, part in enumerate(parts) for _ in part.faces]
    faces = [face for part in parts for face in part.faces]
    if cfg.by == "original":
        order = np.arange(len(faces))
        scores = np.zeros(len(faces))
    else:
        order, scores = SORT_METHODS.get(cfg.by).order(faces, progress=cfg.progress)
        if cfg.reverse:
            order, scores = order[::-1], scores[::-1]
    keep = len(order) if cfg.keep is None else min(cfg.keep, len(order))
    width = max(5, len(str(len(order))))
    renames: list[dict[str, str]] = [{} for _ in parts]  # per part: crop name -> target
    listed: list[tuple[str, float]] = []
    for rank, (i, score) in enumerate(zip(order, scores, strict=True)):
        part = parts[owner[i]]
        first = part.originals.get(faces[i].name, faces[i].name)
        name = first if cfg.by == "original" else f"{rank + 1:0{width}d}_{first}"
        target = name if rank < keep else f"{TRASH_DIR}/{name}"
        if target != faces[i].name:
            renames[owner[i]][faces[i].name] = target
        shown = name if len(parts) == 1 else f"{part.folder.name}/{name}"
        listed.append((shown, float(score)))
    for part, part_renames in zip(parts, renames, strict=True):
        _check_clashes(part, part_renames)
    trashed = sum(t.startswith(f"{TRASH_DIR}/") for r in renames for t in r.values())
    result = SortResult(
        folder=root,
        by=cfg.by,
        order=tuple(listed),
        renamed=sum(len(r) for r in renames) - trashed,
        trashed=trashed,
        unlisted=tuple(
            name if len(parts) == 1 else f"{part.folder.name}/{name}"
            for part in parts
            for name in part.unlisted
        ),
        finished_interrupted=finished,
    )
    if not cfg.dry_run:
        from faceswap.io.files import ensure_writable_dir

        for part, part_renames in zip(parts, renames, strict=True):
            if not part_renames:
                continue
            ensure_writable_dir(part.folder)
            try:
                _rename_part(part, part_renames, cfg.by)
            except OSError as exc:
                raise FaceswapError(
                    f"{part.folder}: cannot rename its faces ({exc.strerror or exc}); fix that "
                    f"and run `faceswap sort {part.folder}` again to finish"
                ) from None
    return result


def _check_clashes(part: _Part, renames: dict[str, str]) -> None:
    taken = set(part.unlisted) | {f"{TRASH_DIR}/{p.name}" for p in _trash_files(part.folder)}
    clash = sorted(taken & set(renames.values()))
    if clash:
        raise FaceswapError(
            f"{part.folder}: sorting would overwrite {clash[0]} (a file not listed in "
            f"{ALIGNMENTS_NAME} or already in {TRASH_DIR}/); move it away first"
        )


def _rename_part(part: _Part, renames: dict[str, str], by: str) -> None:
    """Stage the new alignments, journal the renames of crops and masks, carry them out."""
    from faceswap.train.dataset import GENERATED_MASKS, MASKS_DIR, generated_masks

    folder, al, originals = part.folder, part.alignments, part.originals
    moves: list[_Move] = []
    masks = _mask_files(folder)
    masks_renamed: dict[str, str] = {}
    for k, (old, new) in enumerate(renames.items()):
        moves.append(_Move(old, f".sorting-{k}{Path(old).suffix}", new))
        mask = masks.get(Path(old).stem)
        if mask is not None:
            new_parent = Path(new).parent
            mask_new = (new_parent / MASKS_DIR / f"{Path(new).stem}{mask.suffix}").as_posix()
            moves.append(_Move(f"{MASKS_DIR}/{mask.name}", f".sorting-{k}m{mask.suffix}", mask_new))
            masks_renamed[mask.name] = mask_new

    present = {f.name for f in part.faces}
    # Faces in trash/ from an earlier sort keep their entries (moved back, they restore).
    new_originals = {k: v for k, v in originals.items() if k not in present}
    for name in sorted(present):
        now, first = Path(renames.get(name, name)).name, originals.get(name, name)
        if now != first:
            new_originals[now] = first
    extra = dict(al.extra)
    if not new_originals:
        extra.pop(EXTRA_KEY, None)
    else:
        extra[EXTRA_KEY] = {"by": by, "original": dict(sorted(new_originals.items()))}
    staged = replace(al, frames=_renamed_frames(al.frames, renames), extra=extra)
    save_alignments(folder / STAGED_ALIGNMENTS, staged)

    generated: dict[str, Any] = {}
    known = generated_masks(folder / MASKS_DIR)
    if known and masks_renamed:
        # trash/masks may hold the record of masks an earlier --keep moved there.
        trash_masks = f"{TRASH_DIR}/{MASKS_DIR}"
        earlier = generated_masks(folder / trash_masks)
        by_dir: dict[str, dict[str, Any]] = {trash_masks: {k: dict(v) for k, v in earlier.items()}}
        for name, entry in known.items():
            target = masks_renamed.get(name, f"{MASKS_DIR}/{name}")
            parent, leaf = target.rsplit("/", 1)
            by_dir.setdefault(parent, {})[leaf] = dict(entry)
        by_dir.setdefault(MASKS_DIR, {})
        for parent, record in by_dir.items():
            if not record and parent != MASKS_DIR:
                continue
            generated[f"{parent}/{GENERATED_MASKS}"] = {
                "schema_version": 1,
                "masks": dict(sorted(record.items())),
            }
    journal = {
        "phase": 1,
        "moves": [[m.old, m.tmp, m.new] for m in moves],
        "generated": generated,
    }
    _write_json(folder / JOURNAL, journal)
    _apply_journal(folder)


def _trash_files(folder: Path) -> list[Path]:
    from faceswap.io.images import list_images

    trash = folder / TRASH_DIR
    return list_images(trash) if trash.is_dir() else []


def _renamed_frames(frames: Sequence[FrameRecord], renames: dict[str, str]) -> list[FrameRecord]:
    """The frames with each renamed crop's ``crop_file`` set to its new name (trashed crops
    keep their plain name: a crop missing beside the alignments counts as deleted)."""

    def renamed(face: FaceRecord) -> FaceRecord:
        name = Path(face.crop_file).name if face.crop_file else ""
        if name not in renames:
            return face
        return replace(face, crop_file=Path(renames[name]).name)

    return [replace(fr, faces=tuple(renamed(f) for f in fr.faces)) for fr in frames]

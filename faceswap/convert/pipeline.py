"""The convert stage: decode → find faces → swap (batched) → blend → encode, overlapped.

Five threads joined by bounded queues keep every part busy at once::

    decode ──▶ locate + crop + batch ──▶ inference ──▶ blend ──▶ encode (calling thread)

Frames keep their order end to end. An error in any thread stops all of them and is raised
from :func:`run_convert`; the output is written under a temporary name and renamed only
when every frame is in, so a failed run leaves nothing half-written (a frames folder keeps
the frames done so far in a hidden partial folder, for ``resume``).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import json
import logging
import os
import queue
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from faceswap.config import config_to_dict, dump_json
from faceswap.convert.blend import (
    motion_blur,
    paste_face,
    scale_about_centre,
    sharpen,
    soften,
)
from faceswap.convert.colour import COLOUR_MODES, Grade
from faceswap.convert.masks import MASK_MODES, refine_mask
from faceswap.errors import FaceswapError
from faceswap.faces.lighting import NORMALISERS
from faceswap.faces.rotation import as_rotations
from faceswap.faces.smoothing import SEQUENCE_FPS
from faceswap.io.ffmpeg_args import video_codec_args
from faceswap.io.files import ensure_writable_dir, write_text_atomic
from faceswap.io.images import IMAGE_EXTENSIONS, SIXTEEN_BIT_SUFFIXES, as_8bit, peak_value
from faceswap.ranges import (
    FrameRange,
    as_frame_ranges,
    format_frame_ranges,
    in_frame_ranges,
    last_in_ranges,
)
from faceswap.ranges import parse_frame_ranges as parse_frame_ranges
from faceswap.text import counted

log = logging.getLogger(__name__)

#: Containers the video writer can produce (lower-case suffixes).
VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi")
# Formats of a converted image sequence: png and tif lossless (16 bits from a deeper
# source: frames a compositor reads as they were made), jpg for photos (8 bits), exr for
# linear plates (the plate's own floats outside the faces: faceswap.io.exr).
FRAME_FORMATS = ("png", "tif", "jpg", "exr")
#: Suffixes of a single image written from a single image INPUT (lower case).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".exr")
#: ``smooth`` values: ``auto`` smooths faces detected on the fly (one-euro) and trusts the
#: alignments file, whose landmarks extract already smoothed.
SMOOTH_CHOICES = ("auto", "none", "one-euro", "ema")
#: ``bit_depth`` values: ``auto`` keeps a source's depth above 8 bits (frames in 16 bits),
#: ``8`` works in 8 bits whatever the source has.
BIT_DEPTHS = ("auto", "8")
#: Settings a ``blend_ranges`` entry may set for its frames.
#: The manual grade's settings (:class:`~faceswap.convert.colour.Grade`), each a percent.
GRADE_KEYS = ("brightness", "contrast", "saturation", "temperature", "tint")
#: Each edge's own erosion (:data:`~faceswap.convert.masks.SIDES`), each a percent.
SIDE_KEYS = ("erode_top", "erode_bottom", "erode_left", "erode_right")
BLEND_KEYS = (
    "mask", "colour", "erode", *SIDE_KEYS, "blur", "sharpen", "grain", "face_scale",
    "motion_blur", *GRADE_KEYS,
)  # fmt: skip
#: ``direction`` values: encode with the shared encoder, decode with the other side.
DIRECTIONS = ("a2b", "b2a")
# Queue depths: enough slack to absorb jitter between stages, bounded so memory stays put.
_QUEUE_FRAMES = 8
_QUEUE_BATCHES = 2
# Frames held per batch are capped by bytes too, so 4K input does not hold gigabytes.
_BATCH_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True)
class ConvertConfig:
    """Settings of one convert run.

    Attributes:
        input: video file, image folder or one image of person A (or B with
            ``direction="b2a"``).
        model_dir: folder written by ``faceswap train``.
        output: video file (its suffix picks the container) for a video input, or a new
            folder (a name without a suffix) for its frames as an image sequence; a new
            folder of frames for an image-folder input; an image file (an
            :data:`IMAGE_SUFFIXES` suffix) or a new folder for a single image.
        alignments: alignments file (or extract folder) of ``input``; None detects faces on
            the fly.
        fill_gaps: with ``alignments`` that leave frames out (extracted with
            ``--every-nth``), detect the faces of those frames on the fly (``detector``,
            ``refs``...) so every frame is swapped; off, they pass through unswapped. Frames
            the file holds without faces (none found, or crops deleted) stay as they are.
        direction: ``a2b`` (A's faces drawn as B) or ``b2a``.
        morph: how far toward the other person the faces are drawn, in [0, 1]
            (DeepFaceLab's morph factor; 1: the whole swap, 0.8 keeps a fifth of the
            original's look). LIAE models only: it blends their intermediate codes.
        mask: mask mode (:data:`~faceswap.convert.masks.MASK_MODES`).
        colour: colour mode (:data:`~faceswap.convert.colour.COLOUR_MODES`).
        erode: shrink the mask by this percent of the face crop's side (negative grows it).
        erode_top, erode_bottom, erode_left, erode_right: move that edge of the mask in by
            this percent of the crop's side (negative: out), the others staying (faceswap's
            per-side erosion; top is the forehead's side of the aligned face).
        blur: feather the mask edge over this percent of the crop's side.
        sharpen: unsharp-mask strength for the swapped face (0 = off, ~1 = strong);
            negative softens it instead (-1: a Gaussian blur of 3 % of the crop's side),
            for a soft plate (DeepFaceLab's blur/sharpen).
        grain: add grain to the swapped face to this share of the plate's own beyond the
            face's (0 off, 1 matched), in frame pixels: footage is grainier than the
            decoder's faces. Seeded by frame, so a frame converts the same every time.
        face_scale: paste the swapped face (and its mask) this percent larger (negative:
            smaller) about its centre, for a B face narrower or wider than A's.
        motion_blur: smear the swapped face along its motion since the previous frame, this
            fraction of the way (0 off; 0.5 matches a 180-degree shutter, 1 a 360-degree
            one), so a moving face is as motion-blurred as the plate around it. Video only.
        brightness, contrast, saturation, temperature, tint: a manual grade of the swapped
            face after the colour mode, each a percent in [-100, 100] (0: off; see
            :class:`~faceswap.convert.colour.Grade`; faceswap's manual balance).
        smooth: temporal landmark smoothing (``auto``, ``none``, ``one-euro``, ``ema``).
        detector: face detector for on-the-fly detection (``auto``, ``dlib-hog``...).
        detect_every: on the fly, run the detector every n frames and track in between.
        min_size: smallest face box side to swap, in frame pixels (0 = detector's minimum).
        max_faces: swap at most this many faces per frame, largest first (0 = all).
        refeed: on the fly, average each face's landmarks over this many more fits in moved
            boxes (see :mod:`faceswap.faces.refeed`).
        normalise: on the fly, even out the luma of what the detector sees (``none``,
            ``clahe``, ``hist``, ``mean``; see :mod:`faceswap.faces.lighting`).
        rotate: on the fly, also look for faces turned in the picture at these angles
            (degrees clockwise; a step or list as text, see
            :func:`~faceswap.faces.rotation.parse_rotations`) and follow turned faces.
        refs: photos of the one person to swap, among the faces found on the fly (with
            ``alignments``: in the frames ``fill_gaps`` detects; extract with ``--ref`` to
            filter the file itself).
        ref_threshold: largest identity distance still counted as that person.
        not_refs: photos of people not to swap, among the faces found on the fly (with
            ``refs``: faces nearer them than the ``refs`` person).
        batch_size: faces per inference batch (collected across frames).
        device: torch device (``auto``, ``cpu``, ``cuda``, ``cuda:1``, ``mps``).
        amp: mixed precision: float16 on CUDA, bf16 on CPUs with native bf16 (AVX512-BF16,
            AMX); float32 elsewhere (see :func:`faceswap.device.resolve_amp`).
        codec: ffmpeg video encoder (``libx264``, ``libx265``, ``h264_nvenc``, ``ffv1``...),
            or ``auto`` for the first hardware H.264 encoder that works, else libx264.
        crf, preset, pix_fmt: quality, speed preset and pixel format (see ``VideoWriter``).
        progress: show a progress bar.
        frame_format: file format of frames written to a folder (``png``, ``tif``: lossless;
            ``jpg``: 8 bits).
        matte: also write the blend mask here (uint8, white = swapped face): a video encoded
            like the output when the output is a video, one image when it is an image,
            else a folder of PNGs named like the frames.
        frame_ranges: swap only in these frames (``(first, last)`` inclusive, ``last`` None
            for the rest; or the text ``"10-50,90-"``); the others pass through untouched.
            Empty: every frame.
        ranges_only: write only the frames of ``frame_ranges`` (a frames folder only):
            quick looks at a few frames while tuning the blend settings; decoding stops
            after the last range.
        mask_model: a mask model folder (``faceswap train-masks``) for the ``segment`` mask
            modes.
        resume: go on with the frames an earlier run of the same settings wrote before it
            stopped (a frames folder output; see ``_FolderSink``).
        output_scale: write the frames at this percent of their size (a quick preview
            render of long footage: 50); the faces are swapped at full size first.
        blend_ranges: blend settings for some frames, as DeepFaceLab's merger keeps them per
            frame: each entry a mapping with ``frames`` (``"0-119"``, as ``frame_ranges``)
            and any of :data:`BLEND_KEYS`; for a frame, the last entry whose frames hold it
            replaces those settings of the config, the others keep the config's.
        sequence: an image folder holds the frames of one shot (a plate sequence): faces
            found on the fly are tracked and smoothed, and ``motion_blur`` follows them, as
            in a video (else each image is on its own).
        bit_depth: ``auto``: a source of more than 8 bits a component (10-bit video, 16-bit
            PNG/TIFF frames) is decoded, blended and written in 16 bits, so what passes
            through keeps its precision and the output its depth (10-bit video, 16-bit
            frames); ``8``: every source in 8 bits (faster).
    """

    input: Path
    model_dir: Path
    output: Path
    alignments: Path | None = None
    fill_gaps: bool = True
    direction: str = "a2b"
    morph: float = 1.0
    mask: str = "hull"
    colour: str = "rct"
    erode: float = 0.0
    erode_top: float = 0.0
    erode_bottom: float = 0.0
    erode_left: float = 0.0
    erode_right: float = 0.0
    blur: float = 6.0
    sharpen: float = 0.0
    grain: float = 0.0
    face_scale: float = 0.0
    motion_blur: float = 0.0
    brightness: float = 0.0
    contrast: float = 0.0
    saturation: float = 0.0
    temperature: float = 0.0
    tint: float = 0.0
    smooth: str = "auto"
    detector: str = "auto"
    detect_every: int = 5
    min_size: int = 0
    max_faces: int = 0
    rotate: tuple[float, ...] | str = ()
    normalise: str = "none"
    refeed: int = 0
    refs: tuple[Path, ...] = ()
    ref_threshold: float = 0.6
    not_refs: tuple[Path, ...] = ()
    batch_size: int = 16
    device: str = "auto"
    amp: bool = False
    codec: str = "libx264"
    crf: int = 18
    preset: str = "medium"
    pix_fmt: str = "auto"
    progress: bool = True
    frame_format: str = "png"
    matte: Path | None = None
    frame_ranges: tuple[FrameRange, ...] | str = ()
    ranges_only: bool = False
    bit_depth: str = "auto"
    sequence: bool = False
    mask_model: Path | None = None
    resume: bool = False
    output_scale: float = 100.0
    blend_ranges: tuple[Mapping[str, Any], ...] = ()

    def __post_init__(self) -> None:
        # Configs built from YAML carry strings: make the paths Paths (frozen, hence setattr).
        for name in ("input", "model_dir", "output"):
            object.__setattr__(self, name, Path(getattr(self, name)))
        for name in ("alignments", "matte", "mask_model"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, Path(getattr(self, name)))
        object.__setattr__(self, "refs", tuple(Path(p) for p in self.refs))
        object.__setattr__(self, "not_refs", tuple(Path(p) for p in self.not_refs))
        object.__setattr__(self, "rotate", as_rotations(self.rotate))
        object.__setattr__(self, "frame_ranges", as_frame_ranges(self.frame_ranges))
        MASK_MODES.get(self.mask)  # unknown names fail listing the valid ones
        NORMALISERS.get(self.normalise)
        COLOUR_MODES.get(self.colour)
        checks = [
            (self.direction in DIRECTIONS, f"--direction: choose from {', '.join(DIRECTIONS)}"),
            (
                0 <= self.morph <= 1,
                f"--morph must be in [0, 1] (1: the whole swap), got {self.morph}",
            ),
            (0 <= self.refeed <= 64, f"--refeed must be in 0-64 fits, got {self.refeed}"),
            (self.smooth in SMOOTH_CHOICES, f"--smooth: choose from {', '.join(SMOOTH_CHOICES)}"),
            (-50 <= self.erode <= 50, f"--erode must be in [-50, 50] percent, got {self.erode}"),
            (0 <= self.blur <= 50, f"--blur must be in [0, 50] percent, got {self.blur}"),
            (self.sharpen >= -1, f"--sharpen must be >= -1 (negative softens), got {self.sharpen}"),
            (0 <= self.grain <= 2, f"--grain must be in [0, 2] (1: the plate's), got {self.grain}"),
            (
                0 <= self.motion_blur <= 2,
                f"--motion-blur must be in [0, 2] (0.5: a 180-degree shutter), "
                f"got {self.motion_blur}",
            ),
            (
                -50 <= self.face_scale <= 50,
                f"--face-scale must be in [-50, 50] percent, got {self.face_scale}",
            ),
            (self.detect_every >= 1, f"--detect-every must be >= 1, got {self.detect_every}"),
            (self.min_size >= 0, f"--min-size must be >= 0, got {self.min_size}"),
            (self.max_faces >= 0, f"--max-faces must be >= 0, got {self.max_faces}"),
            (0 < self.ref_threshold < 2, "--ref-threshold must be in (0, 2)"),
            (self.batch_size >= 1, f"--batch-size must be >= 1, got {self.batch_size}"),
            (0 <= self.crf <= 63, f"--crf must be in [0, 63], got {self.crf}"),
            (
                self.frame_format in FRAME_FORMATS,
                f"--frame-format: choose from {', '.join(FRAME_FORMATS)}",
            ),
            (self.bit_depth in BIT_DEPTHS, f"--bit-depth: choose from {', '.join(BIT_DEPTHS)}"),
            (
                1 <= self.output_scale <= 100,
                f"--output-scale must be in [1, 100] percent, got {self.output_scale}",
            ),
        ]
        checks += [
            (
                -100 <= getattr(self, name) <= 100,
                f"--{name} must be in [-100, 100] percent, got {getattr(self, name)}",
            )
            for name in GRADE_KEYS
        ]
        checks += [
            (
                -50 <= getattr(self, name) <= 50,
                f"--{name.replace('_', '-')} must be in [-50, 50] percent, got "
                f"{getattr(self, name)}",
            )
            for name in SIDE_KEYS
        ]
        for ok, message in checks:
            if not ok:
                raise FaceswapError(message)
        object.__setattr__(self, "blend_ranges", tuple(map(self._checked_blend, self.blend_ranges)))
        if self.ranges_only and not self.frame_ranges:
            raise FaceswapError("--ranges-only writes the frames of --frame-ranges; give those")

    def _checked_blend(self, entry: Mapping[str, Any]) -> dict[str, Any]:
        """A ``blend_ranges`` entry with its frames normalised, its settings checked."""
        if isinstance(entry, Mapping) and "color" in entry:  # the spelling of --color
            entry = {("colour" if k == "color" else k): v for k, v in entry.items()}
        if not isinstance(entry, Mapping) or "frames" not in entry:
            raise FaceswapError(
                f"blend ranges: each entry needs frames (e.g. frames: 0-119), got {entry!r}"
            )
        unknown = sorted(set(entry) - {"frames", *BLEND_KEYS})
        if unknown:
            raise FaceswapError(
                f"blend ranges: unknown setting {', '.join(unknown)}; an entry may set "
                f"{', '.join(BLEND_KEYS)}"
            )
        frames = entry["frames"]
        text = str(frames) if not isinstance(frames, (list, tuple)) else ",".join(map(str, frames))
        settings = {k: v for k, v in entry.items() if k != "frames"}
        try:
            dataclasses.replace(self, blend_ranges=(), **settings)  # the same checks
        except FaceswapError as exc:
            raise FaceswapError(f"blend ranges, frames {text}: {exc}") from None
        return {"frames": format_frame_ranges(parse_frame_ranges(text)), **settings}

    def blend_variants(self) -> list[tuple[tuple[FrameRange, ...], ConvertConfig]]:
        """``(frames, config with that entry's settings)`` of each ``blend_ranges`` entry."""
        out = []
        for entry in self.blend_ranges:
            settings = {k: v for k, v in entry.items() if k != "frames"}
            variant = dataclasses.replace(self, blend_ranges=(), **settings)
            out.append((parse_frame_ranges(entry["frames"]), variant))
        return out


@dataclass(frozen=True)
class ConvertResult:
    """What a convert run did.

    Attributes:
        output: the video file or image folder written.
        manifest: the provenance manifest beside it.
        frames: frames written (equal to the frames decoded).
        frames_swapped: frames in which at least one face was swapped.
        faces_swapped: faces swapped in all frames.
        seconds: wall time of the run.
        model_sha256: hex digest of the model weights used.
        device: torch device used.
        stage_seconds: seconds each pipeline stage (decode, prepare, infer, blend, encode)
            spent working rather than waiting on its neighbours: the largest is the
            bottleneck. ``encode`` includes the writer's pipe and ffmpeg back-pressure.
        matte: the ``--matte`` video or folder, when asked for.
        resumed: frames an earlier, stopped run had written (``resume``), not in ``frames``.
    """

    output: Path
    manifest: Path
    frames: int
    frames_swapped: int
    faces_swapped: int
    seconds: float
    model_sha256: str
    device: str
    stage_seconds: dict[str, float] = field(default_factory=dict)
    matte: Path | None = None
    resumed: int = 0

    @property
    def fps(self) -> float:
        """End-to-end throughput in frames per second."""
        return self.frames / self.seconds if self.seconds > 0 else 0.0


# -- work items ---------------------------------------------------------------------------------


@dataclass
class _Face:
    matrix: np.ndarray  # (2, 3) frame -> crop
    crop_landmarks: np.ndarray  # (68, 2) crop pixels
    crop: np.ndarray  # uint8 (R, R, 3), the original face (uint16 from a deep frame)
    swapped: np.ndarray | None = None  # float32 (R, R, 3) in [0, 1]
    learned: np.ndarray | None = None  # float32 (R, R) in [0, 1]
    learned_dst: np.ndarray | None = None  # float32 (R, R), the face's own decoder's mask
    segment: np.ndarray | None = None  # float32 (R, R), the mask model's mask of the face
    segment_swap: np.ndarray | None = None  # float32 (R, R), and of the swapped face
    motion: tuple[float, float] = (0.0, 0.0)  # crop px moved since the previous frame


@dataclass
class _Item:
    frame: Any  # faceswap.io.video.Frame
    faces: list[_Face] = field(default_factory=list)
    image: np.ndarray | None = None  # the output frame once blended
    matte: np.ndarray | None = None  # uint8 (H, W) blend mask, with --matte


_END = object()


class _Threads:
    """Bounded queues between worker threads; an error anywhere stops them all."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.errors: list[BaseException] = []
        self._threads: list[threading.Thread] = []
        # Per thread name: seconds alive and seconds spent waiting on a queue; the difference
        # is the time the stage worked, which shows the bottleneck.
        self.alive: dict[str, float] = {}
        self.waiting: dict[str, float] = {}

    def _waited(self, since: float) -> None:
        name = threading.current_thread().name
        self.waiting[name] = self.waiting.get(name, 0.0) + time.perf_counter() - since

    def busy(self) -> dict[str, float]:
        """Seconds each stage spent working (not waiting on its queues)."""
        return {
            name.removeprefix("convert-"): round(total - self.waiting.get(name, 0.0), 3)
            for name, total in self.alive.items()
        }

    def queue(self, size: int) -> queue.Queue:
        return queue.Queue(maxsize=size)

    def put(self, q: queue.Queue, item: Any) -> bool:
        since = time.perf_counter()
        try:
            while not self.stop.is_set():
                try:
                    q.put(item, timeout=0.05)
                    return True
                except queue.Full:
                    continue
            return False
        finally:
            self._waited(since)

    def get(self, q: queue.Queue) -> Any:
        since = time.perf_counter()
        try:
            while True:
                try:
                    return q.get(timeout=0.05)
                except queue.Empty:
                    if self.stop.is_set():
                        return _END
        finally:
            self._waited(since)

    def items(self, q: queue.Queue) -> Iterator[Any]:
        while (item := self.get(q)) is not _END:
            yield item

    def start(self, name: str, fn: Callable[[], None]) -> None:
        def target() -> None:
            start = time.perf_counter()
            try:
                fn()
            except BaseException as exc:  # re-raised in the calling thread
                self.errors.append(exc)
                self.stop.set()
            finally:
                self.alive[f"convert-{name}"] = time.perf_counter() - start

        thread = threading.Thread(target=target, name=f"convert-{name}", daemon=True)
        self._threads.append(thread)
        thread.start()

    def close(self) -> None:
        self.stop.set()
        for thread in self._threads:
            thread.join()


# -- output sinks -------------------------------------------------------------------------------


def partial_folder(folder: Path) -> Path:
    """Where the frames of ``folder`` are assembled until the run completes (hidden)."""
    return folder.parent / f".{folder.name}.partial"


# Hidden files in a partial folder: the settings it was made with and the counts so far.
_PARTIAL_SETTINGS = ".convert_settings.json"
_PARTIAL_PROGRESS = ".convert_progress.json"


class _FolderSink:
    """Frames into a new folder, assembled in a hidden partial folder beside it
    (:func:`partial_folder`) and renamed when the run completes.

    A run that stops after writing frames (Ctrl-C, SIGTERM, a full disk, a crash) leaves the
    partial folder, each frame in it whole (written atomically), so that ``resume`` goes on
    from there; one that wrote nothing leaves nothing. ``settings`` (what decides the
    pixels) are kept in it, and a resume with other settings is refused.
    """

    def __init__(
        self,
        folder: Path,
        suffix: str = ".png",
        text: Mapping[str, str] | None = None,
        *,
        resume: bool = False,
        settings: Mapping[str, Any] | None = None,
        plates: Mapping[str, Path] | None = None,
    ) -> None:
        self.folder = folder
        self.suffix = suffix
        self.text = text  # embedded in each PNG: provenance that travels with every frame
        self.plates = plates or {}  # EXR frames by name: their floats outside the faces
        self.frames_written = 0
        self.partial = partial_folder(folder)
        self.done: frozenset[str] = frozenset()
        self.progress: dict[str, int] = {}
        settings_json = dump_json(dict(settings or {}))
        if resume:
            if not self.partial.is_dir():
                raise FaceswapError(
                    f"{folder}: nothing to resume (no {self.partial.name} beside it); drop "
                    "--resume to convert from the start"
                )
            saved = self.partial / _PARTIAL_SETTINGS
            if not saved.is_file() or saved.read_text(encoding="utf-8") != settings_json:
                raise FaceswapError(
                    f"{folder}: the frames so far were made with other settings or another "
                    "model; rerun the same command to resume, or drop --resume to start over"
                )
            self.done = frozenset(p.stem for p in self.partial.glob(f"*{suffix}"))
            with contextlib.suppress(OSError, ValueError):
                progress = self.partial / _PARTIAL_PROGRESS
                self.progress = json.loads(progress.read_text(encoding="utf-8"))
        else:
            if self.partial.exists():
                # Hours of frames may be in there: never thrown away unasked.
                raise FaceswapError(
                    f"{folder}: {self.partial} holds the frames of a run that stopped; add "
                    "--resume to go on with them, or delete that folder to start over"
                )
            self.partial.mkdir()
            try:
                write_text_atomic(self.partial / _PARTIAL_SETTINGS, settings_json)
            except FaceswapError as exc:  # a full disk: name the folder asked for
                shutil.rmtree(self.partial, ignore_errors=True)
                hidden = str(self.partial / _PARTIAL_SETTINGS)
                raise FaceswapError(str(exc).replace(hidden, str(folder))) from None

    def __enter__(self) -> _FolderSink:
        return self

    def write(self, image: np.ndarray, name: str, matte: np.ndarray | None = None) -> None:
        try:
            path = self.partial / f"{name}{self.suffix}"
            _write_frame(path, image, self.text, self.plates.get(name), matte)
        except FaceswapError as exc:  # name the folder the user asked for, not ours
            raise FaceswapError(str(exc).replace(str(self.partial), str(self.folder))) from None
        self.frames_written += 1

    def save_progress(self, counts: Mapping[str, int]) -> None:
        """Record counts (frames and faces swapped so far) for a later resume."""
        if self.partial.is_dir():
            write_text_atomic(self.partial / _PARTIAL_PROGRESS, dump_json(dict(counts)))

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            for hidden in (_PARTIAL_SETTINGS, _PARTIAL_PROGRESS):
                (self.partial / hidden).unlink(missing_ok=True)
            if self.folder.exists():
                self.folder.rmdir()  # checked empty up front
            os.replace(self.partial, self.folder)
        elif not any(self.partial.glob(f"*{self.suffix}")):
            shutil.rmtree(self.partial, ignore_errors=True)


class _ImageSink:
    """The one frame of a single-image input, into an image file (written atomically)."""

    def __init__(
        self, path: Path, text: Mapping[str, str] | None = None, plate: Path | None = None
    ) -> None:
        self.path = path
        self.text = text
        self.plate = plate
        self.frames_written = 0

    def __enter__(self) -> _ImageSink:
        return self

    def write(self, image: np.ndarray, name: str, matte: np.ndarray | None = None) -> None:
        _write_frame(self.path, image, self.text, self.plate, matte)
        self.frames_written += 1

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        return None


def _write_frame(
    path: Path,
    image: np.ndarray,
    text: Mapping[str, str] | None,
    plate: Path | None,
    matte: np.ndarray | None,
) -> None:
    """Write one output frame; an EXR made from an EXR ``plate`` of its size keeps the
    plate's floats (highlights included), header and pixel type where ``matte`` is 0.

    The plate is read again here rather than carried through the pipeline's queues: a
    second decode of one file a frame, against three float32 copies of every frame in
    flight."""
    from faceswap.io.exr import composite_linear, is_exr, read_exr, write_exr
    from faceswap.io.images import write_image

    if plate is not None and is_exr(path):
        source = read_exr(plate)
        if source.rgb.shape == image.shape:
            write_exr(path, composite_linear(image, source.rgb, matte), text=text, like=source)
            return
    write_image(path, _storable(image, path.suffix), text=text)


def _storable(image: np.ndarray, suffix: str) -> np.ndarray:
    """``image`` in a depth a ``suffix`` file holds: 16 bits go to 8 in a JPEG."""
    return image if suffix.lower() in SIXTEEN_BIT_SUFFIXES else as_8bit(image)


class _VideoSink:
    def __init__(self, writer: Any) -> None:
        self.writer = writer

    @property
    def frames_written(self) -> int:
        return int(self.writer.frames_written)

    def __enter__(self) -> _VideoSink:
        self.writer.__enter__()
        return self

    def write(self, image: np.ndarray, name: str, matte: np.ndarray | None = None) -> None:
        # A grey matte goes out as RGB (its luma carries it through yuv420p).
        self.writer.write(image if image.ndim == 3 else np.repeat(image[..., None], 3, axis=2))

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> Any:
        return self.writer.__exit__(exc_type, exc, tb)


# -- the stage ----------------------------------------------------------------------------------


def writes_frames(input_is_video: bool, output: Path | str) -> bool:
    """Whether ``output`` is to be a folder of frames rather than a video file.

    Image folders always convert to frames; a video does when ``output`` names a folder
    (an existing one, or a name without a suffix), for compositing frame by frame.
    """
    output = Path(output)
    return not input_is_video or output.is_dir() or not output.suffix


def output_kind(input_path: Path | str, input_is_video: bool, output: Path | str) -> str:
    """What ``output`` is to be: ``"video"``, ``"frames"`` (a folder, see
    :func:`writes_frames`) or ``"image"``: one image file, for a single image INPUT and an
    output named with an image suffix (:data:`IMAGE_SUFFIXES`)."""
    output = Path(output)
    single = not input_is_video and Path(input_path).is_file()
    if single and output.suffix.lower() in IMAGE_SUFFIXES and not output.is_dir():
        return "image"
    return "frames" if writes_frames(input_is_video, output) else "video"


_KIND_NAMES = {"video": "a video", "frames": "a folder of frames", "image": "an image"}


def _check_output(cfg: ConvertConfig, kind: str, output: Path | None = None) -> Path:
    """``output`` (by default ``cfg.output``), checked as a place to write the result to.

    ``kind``: what the result is (see :func:`output_kind`).
    """
    output = Path(cfg.output if output is None else output)
    if output.resolve() == Path(cfg.input).resolve():
        raise FaceswapError(f"{output}: output would overwrite the input; choose another path")
    if kind == "image":
        if output.exists() and not output.is_file():
            raise FaceswapError(f"{output}: exists and is not a file; choose another path")
    elif kind == "video":
        if output.suffix.lower() not in VIDEO_SUFFIXES:
            raise FaceswapError(
                f"{output}: unknown video container '{output.suffix}'; end the name with one "
                f"of {', '.join(VIDEO_SUFFIXES)}, or give a folder name (no suffix) for frames"
            )
    else:
        if output.suffix.lower() in VIDEO_SUFFIXES:
            raise FaceswapError(
                f"{output}: the output is a folder of frames; give a folder path (no video suffix)"
            )
        if output.suffix.lower() in IMAGE_EXTENSIONS and not output.exists():
            if Path(cfg.input).is_file():  # a single image, to a format we do not write
                raise FaceswapError(
                    f"{output}: convert writes {', '.join(IMAGE_SUFFIXES)} images (they carry "
                    "the provenance tags); use one of those suffixes, or a folder name"
                )
            raise FaceswapError(
                f"{output}: an image file is the output of a single image; "
                f"{Path(cfg.input).name} is a folder: give a folder name (no suffix) for its frames"
            )
        if output.exists() and (not output.is_dir() or any(output.iterdir())):
            raise FaceswapError(f"{output}: exists and is not an empty folder; choose a new one")
    ensure_writable_dir(output.parent)
    return output


def _box_side(box: np.ndarray) -> float:
    x0, y0, x1, y1 = (float(v) for v in np.asarray(box).reshape(4))
    return max(x1 - x0, y1 - y0)


def _without_deleted_crops(al: Any, where: Path) -> dict[int, Any]:
    """Frames of ``al`` by index, less the faces whose crops were deleted from the faces
    folder: deleting a crop (a false detection, the wrong person) keeps its face unswapped,
    as in DeepFaceLab (:func:`~faceswap.faces.alignments.reviewed_frames`)."""
    from faceswap.faces.alignments import reviewed_frames
    from faceswap.sort import check_not_mid_sort

    folder = where if where.is_dir() else where.parent
    check_not_mid_sort(folder, "--alignments")
    frames, deleted = reviewed_frames(al, folder)
    if deleted:
        log.warning(
            "%s: %d of %d faces have no crop there any more (deleted), so they are not swapped",
            folder,
            deleted,
            al.face_count,
        )
    return {frame.index: frame for frame in frames}


class _Locator:
    """Faces of each frame: from an alignments file, or detected on the fly."""

    def __init__(self, cfg: ConvertConfig, source: Any, crop: Any) -> None:
        from faceswap.faces.smoothing import LandmarkSmoother

        self.crop = crop
        self.min_size = float(cfg.min_size)
        self.max_faces = int(cfg.max_faces)
        fps = float(source.fps) if source.fps else SEQUENCE_FPS
        self.tracked = bool(source.is_video or cfg.sequence)
        smooth = cfg.smooth
        if smooth == "auto":
            smooth = "none" if cfg.alignments is not None else "one-euro"
        # Unrelated photos in an image folder must not be smoothed into each other.
        if not self.tracked:
            smooth = "none"
        self.smoother = None if smooth == "none" else LandmarkSmoother(smooth, fps=fps)
        self.by_index: dict[int, Any] | None = None
        self.finder: Any = None
        self._last_index = -1
        self._last_from_file = False
        if cfg.alignments is not None:
            self.by_index = self._load_alignments(cfg, source)
            if cfg.fill_gaps and len(self.by_index) < source.frame_count:
                self.finder = self._finder(cfg, source)
            elif cfg.refs or cfg.not_refs or cfg.rotate or cfg.normalise != "none" or cfg.refeed:
                options = (
                    ("--ref", cfg.refs),
                    ("--not-ref", cfg.not_refs),
                    ("--rotate", cfg.rotate),
                    ("--normalise", cfg.normalise != "none"),
                    ("--refeed", cfg.refeed != 0),
                )
                given = [name for name, on in options if on]
                one = len(given) == 1
                log.warning(
                    "%s %s not used: %s on faces found on the fly, and %s gives every frame "
                    "its faces (extract with %s instead)",
                    " and ".join(given),
                    "is" if one else "are",
                    "it acts" if one else "they act",
                    Path(cfg.alignments).name,
                    "it" if one else "them",
                )
        else:
            self.finder = self._finder(cfg, source)

    @staticmethod
    def _load_alignments(cfg: ConvertConfig, source: Any) -> dict[int, Any]:
        from faceswap.faces.alignments import load_alignments

        assert cfg.alignments is not None
        al = load_alignments(cfg.alignments)
        if al.frame_count != source.frame_count:
            raise FaceswapError(
                f"{cfg.alignments}: alignments are for {al.frame_count} frames but "
                f"{cfg.input} has {source.frame_count}; they come from another video: "
                "pass this video's alignments or run `faceswap extract` on it"
            )
        if (al.width, al.height) != (source.width, source.height):
            raise FaceswapError(
                f"{cfg.alignments}: alignments are for {al.width}x{al.height} frames but "
                f"{cfg.input} is {source.width}x{source.height}; pass this video's alignments"
            )
        if source.is_video and Path(al.source).name != Path(cfg.input).name:
            # Same length and size, another name: a renamed file, or another take whose
            # faces would land in the wrong places.
            log.warning(
                "%s was extracted from %s, not %s (the same frame count and size); if that is "
                "another video, pass this one's alignments",
                cfg.alignments,
                Path(al.source).name,
                Path(cfg.input).name,
            )
        extracted = str(al.extra.get("frame_ranges") or "")
        if len(al.frames) < al.frame_count and not (extracted and cfg.frame_ranges):
            then = (
                f"faces in the other {al.frame_count - len(al.frames)} are detected on the fly "
                f"({cfg.detector}); --no-fill-gaps passes them through unswapped"
                if cfg.fill_gaps
                else "the others pass through unswapped"
            )
            if extracted:
                log.warning(
                    "%s holds frames %s only (extract --frame-ranges): add --frame-ranges %s "
                    "to swap just those; else %s",
                    cfg.alignments,
                    extracted,
                    extracted,
                    then,
                )
            else:
                log.warning(
                    "%s covers %d of %d frames (extracted with --every-nth?); %s",
                    cfg.alignments,
                    len(al.frames),
                    al.frame_count,
                    then,
                )
        return _without_deleted_crops(al, Path(cfg.alignments))

    def _finder(self, cfg: ConvertConfig, source: Any) -> Any:
        from faceswap.faces.finder import FaceFinder, detector_for

        detector = detector_for(cfg)
        identity = None
        if cfg.refs or cfg.not_refs:
            from faceswap.faces.identity import IdentityFilter

            identity = IdentityFilter.from_photos(
                cfg.refs, detector, cfg.ref_threshold, exclude=cfg.not_refs
            )
        return FaceFinder(
            detector,
            self.crop,
            detect_every=cfg.detect_every if self.tracked else 1,
            min_size=cfg.min_size,
            max_faces=cfg.max_faces,
            identity=identity,
            smoother=self.smoother,
        )

    def landmarks(self, frame: Any) -> list[np.ndarray]:
        """(68, 2) landmarks of each face to swap in ``frame``.

        Frames are asked for in order; after a gap (frames outside ``--frame-ranges``)
        tracking and smoothing start afresh rather than carry faces across it."""
        from_file = self.by_index is not None and frame.index in self.by_index
        # The finder tracks consecutive frames it is given: it starts afresh after a gap in
        # the frames, and at each stretch the alignments file leaves out (--fill-gaps).
        entering_gap = not from_file and self._last_from_file
        if frame.index != self._last_index + 1 or entering_gap:
            if self.finder is not None:
                self.finder.reset()  # also resets its smoother
            elif self.smoother is not None:
                self.smoother.reset()
        self._last_index, self._last_from_file = frame.index, from_file
        if not from_file:
            if self.finder is None:
                return []
            image = as_8bit(frame.image)  # the detectors and landmark models take 8 bits
            return [f.landmarks for f in self.finder.find(image, frame.timestamp)]
        assert self.by_index is not None
        record = self.by_index[frame.index]
        faces = [f for f in record.faces if _box_side(f.box) >= self.min_size]
        if self.max_faces:
            faces = sorted(faces, key=lambda f: -_box_side(f.box))[: self.max_faces]
        out = []
        for i, face in enumerate(faces):
            lm = np.asarray(face.landmarks, np.float32)
            if self.smoother is not None:
                track = face.track_id if face.track_id >= 0 else i
                lm = self.smoother.update(track, lm, frame.timestamp)
            out.append(lm)
        return out


def run_convert(cfg: ConvertConfig) -> ConvertResult:
    """Swap the faces of ``cfg.input`` with the model in ``cfg.model_dir``; write ``cfg.output``.

    Raises:
        FaceswapError: missing/unreadable input or model, a mask mode the model cannot do,
            alignments of another video, an unwritable output path, or an encoder failure.
            Nothing is left under the output name when it raises.
    """
    import torch

    from faceswap.convert.swapper import Swapper
    from faceswap.device import is_out_of_memory, out_of_memory_error, resolve_device
    from faceswap.faces.align import CropSpec
    from faceswap.io.video import VideoWriter, auto_encoder, open_source
    from faceswap.provenance import file_sha256, frame_marker, provenance_tags, write_manifest
    from faceswap.train.checkpoint import load_for_inference

    started = time.perf_counter()
    if not Path(cfg.input).exists():
        raise FaceswapError(f"{cfg.input}: no such file or folder; check the input path")
    source = open_source(cfg.input, deep=cfg.bit_depth == "auto")
    kind = output_kind(cfg.input, source.is_video, cfg.output)
    as_frames = kind == "frames"
    if cfg.ranges_only and not as_frames:
        raise FaceswapError(
            f"{cfg.output}: --ranges-only writes just some frames, which {_KIND_NAMES[kind]} "
            "cannot hold; give a folder (no suffix) for frames"
        )
    if cfg.resume and not as_frames:
        raise FaceswapError(
            f"{cfg.output}: --resume goes on with a folder of frames; {_KIND_NAMES[kind]} is "
            "written whole: drop --resume (or write frames: an -o folder)"
        )
    output = _check_output(cfg, kind)
    total = source.frame_count
    if cfg.frame_ranges and total and min(lo for lo, _ in cfg.frame_ranges) >= total:
        raise FaceswapError(
            f"{cfg.input}: --frame-ranges selects none of its {total} frames (0-{total - 1}); "
            "frame numbers count from 0"
        )
    if cfg.matte is not None:
        if cfg.matte.resolve() == output.resolve():
            raise FaceswapError(f"{cfg.matte}: --matte must differ from the output; rename one")
        if kind != output_kind(cfg.input, source.is_video, cfg.matte):
            fix = {
                "frames": "give a folder path (no video suffix)",
                "video": "give it a video suffix",
                "image": f"give it an image suffix ({', '.join(IMAGE_SUFFIXES)})",
            }[kind]
            what = _KIND_NAMES[kind]
            raise FaceswapError(
                f"{cfg.matte}: the output is {what}, so --matte is {what} too; {fix}"
            )
        _check_output(cfg, kind, cfg.matte)
    variants = cfg.blend_variants()  # per-range blend settings
    every = [cfg, *(variant for _, variant in variants)]
    modes = {MASK_MODES.get(c.mask) for c in every}
    device = resolve_device(cfg.device)
    loaded = load_for_inference(cfg.model_dir, device)
    for mode in modes:
        if mode.needs_learned and not loaded.config.learned_mask:
            raise FaceswapError(
                f"--mask {mode.name} needs a model with a learned mask, and {cfg.model_dir} "
                "has none; use --mask hull or train a preset with learned_mask: true"
            )
    predictor = None
    needs_segment_swap = any(mode.needs_segment_swap for mode in modes)
    if cfg.mask_model is not None and not any(mode.needs_segment for mode in modes):
        log.warning(
            "--mask-model %s is not used: only --mask segment and segment-both (also in "
            "--blend-ranges) use it; this run blends with --mask %s",
            Path(cfg.mask_model).name,
            cfg.mask,
        )
    if any(mode.needs_segment for mode in modes):
        if cfg.mask_model is None:
            name = next(mode.name for mode in modes if mode.needs_segment)
            raise FaceswapError(
                f"--mask {name} needs --mask-model FOLDER (a `faceswap train-masks` -m "
                "folder); or use --mask hull"
            )
        from faceswap.train.segment import MaskPredictor, read_segmenter_card

        predictor = MaskPredictor(cfg.mask_model, device)
        framing = read_segmenter_card(cfg.mask_model).get("crop") or {}
        ours = {"coverage": loaded.crop.coverage, "centering": loaded.crop.centering}
        if framing and {k: framing.get(k) for k in ours} != ours:
            log.warning(
                "%s learned masks of faces framed with centering '%s', coverage %s, but the "
                "model's faces are framed with '%s', %s: its masks may miss; train it on "
                "faces extracted like the model's",
                cfg.mask_model,
                framing.get("centering"),
                framing.get("coverage"),
                ours["centering"],
                ours["coverage"],
            )
    res = int(loaded.config.resolution)
    crop = CropSpec(size=res, coverage=loaded.crop.coverage, centering=loaded.crop.centering)
    locator = _Locator(cfg, source, crop)
    swapper = Swapper(loaded.model, device, cfg.direction, amp=cfg.amp,
                      dst_mask=any(mode.needs_dst for mode in modes), morph=cfg.morph)  # fmt: skip
    marker = frame_marker()
    preset = loaded.card.get("preset") or loaded.config.name or None

    if source.is_video and source.info is not None and source.info.variable_rate:
        log.warning(
            "%s has a variable frame rate; the output is written at its average rate %s fps "
            "(same frames and duration; frames may shift by part of a frame against the audio)",
            cfg.input,
            source.fps,
        )
    # auto: the first hardware H.264 encoder that works here (NVENC, QSV, VideoToolbox).
    hdr = bool(source.info and source.info.output_colour and source.info.output_colour.hdr)
    codec = auto_encoder(hdr) if source.is_video and cfg.codec == "auto" else cfg.codec

    out_size = _scaled_size(source.width, source.height, cfg.output_scale)

    def video_sink(path: Path, **options: Any) -> _VideoSink:
        return _VideoSink(
            VideoWriter(path, *out_size, source.fps, codec=codec, crf=cfg.crf,
                        preset=cfg.preset, **options)
        )  # fmt: skip

    if source.deep:
        log.info("%s has more than 8 bits a component: working in 16 bits", Path(cfg.input).name)

    tags = provenance_tags(loaded.weights_sha256, preset=preset)
    # What decides the pixels: a resumed run must go on with the same.
    volatile = ("progress", "resume", "device", "batch_size")
    pixel_settings = {k: v for k, v in config_to_dict(cfg).items() if k not in volatile}
    pixel_settings["model_sha256"] = loaded.weights_sha256
    deep_suffix = output.suffix if kind == "image" else f".{cfg.frame_format}"
    if source.deep and kind != "video" and deep_suffix.lower() not in SIXTEEN_BIT_SUFFIXES:
        log.info(
            "%s: JPEG holds 8 bits a component, so the output is 8-bit; write PNG or TIFF to "
            "keep the source's depth",
            output.name,
        )
    # EXR frames from EXR plates keep the plates' own floats outside the faces.
    plates: dict[str, Path] = {}
    if not source.is_video and kind != "video" and deep_suffix.lower() == ".exr":
        from faceswap.io.exr import is_exr

        plates = {f.stem: f for f in getattr(source, "files", ()) if is_exr(f)}
        if plates and out_size != (source.width, source.height):
            plates = {}  # a scaled output has no plate pixels to keep
    sink: _VideoSink | _FolderSink | _ImageSink
    if kind == "image":
        sink = _ImageSink(output, text=tags, plate=next(iter(plates.values()), None))
    elif kind == "video":
        sink = video_sink(
            output,
            pix_fmt=cfg.pix_fmt,
            # The source also lends its timecode and pixel aspect ratio (anamorphic video).
            audio_from=Path(cfg.input),
            metadata=tags,
            deep=source.deep,
        )
    else:
        sink = _FolderSink(output, f".{cfg.frame_format}", text=tags, resume=cfg.resume,
                           settings=pixel_settings, plates=plates)  # fmt: skip

    def open_matte() -> Any:
        """The --matte sink: a video encoded like the output (no audio) or a PNG folder."""
        if cfg.matte is None:
            return contextlib.nullcontext()
        if kind == "image":
            return _ImageSink(cfg.matte)
        if as_frames:
            return _FolderSink(cfg.matte, resume=cfg.resume, settings=pixel_settings)
        info = source.info
        return video_sink(
            cfg.matte,
            metadata={"comment": f"faceswap blend matte of {output.name}: white = swapped face"},
            timecode=(info.timecode or None) if info else None,
            sar=info.sar if info else None,
        )

    # The manifest records the input's sha256: hash it while the frames flow.
    hasher = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="convert-hash")
    input_hash = hasher.submit(file_sha256, cfg.input) if Path(cfg.input).is_file() else None

    threads = _Threads()
    q_frames, q_out = threads.queue(_QUEUE_FRAMES), threads.queue(_QUEUE_FRAMES)
    q_batches, q_swapped = threads.queue(_QUEUE_BATCHES), threads.queue(_QUEUE_BATCHES)
    # A batch closes at batch_size faces, or earlier after this many frames (faceless
    # stretches, huge frames) so frames keep flowing to the encoder.
    frame_bytes = max(source.width * source.height * 3 * (2 if source.deep else 1), 1)
    max_frames = max(1, min(2 * cfg.batch_size + 8, _BATCH_BYTES // frame_bytes))

    last_wanted = last_in_ranges(cfg.frame_ranges)  # type: ignore[arg-type]

    done: frozenset[str] = frozenset()  # frames a stopped run wrote (resume)

    def decode() -> None:
        first = 0
        if done:  # start at the first frame still to write (a seek for video)
            names = (
                [f"frame_{i:06d}" for i in range(total)]
                if source.is_video
                else [f.stem for f in source.files]  # type: ignore[attr-defined]
            )
            first = next((i for i, name in enumerate(names) if name not in done), len(names))
        frames = source.iter_frames(start=first)
        try:
            for frame in frames:
                if frame.name in done:
                    continue
                if cfg.ranges_only and not in_frame_ranges(frame.index, cfg.frame_ranges):
                    if last_wanted is not None and frame.index > last_wanted:
                        break  # nothing more to write: stop decoding
                    continue
                if not threads.put(q_frames, frame):
                    return
        finally:
            with contextlib.suppress(Exception):
                frames.close()  # type: ignore[attr-defined]
            threads.put(q_frames, _END)

    def prepare() -> None:
        from faceswap.faces.align import alignment_matrix, transform_points

        batch: list[_Item] = []
        n_faces = 0
        blurred = any(c.motion_blur > 0 for c in every)
        tracker = _MotionTracker(res) if blurred and locator.tracked else None
        for frame in threads.items(q_frames):
            item = _Item(frame)
            wanted = in_frame_ranges(frame.index, cfg.frame_ranges)
            for lm in locator.landmarks(frame) if wanted else ():
                matrix = alignment_matrix(lm, crop)
                item.faces.append(
                    _Face(
                        matrix=matrix,
                        crop_landmarks=transform_points(lm, matrix),
                        crop=_crop_face(frame.image, matrix, res),
                    )
                )
            if tracker is not None:
                tracker.update(frame.index, item.faces)
            batch.append(item)
            n_faces += len(item.faces)
            if n_faces >= cfg.batch_size or len(batch) >= max_frames:
                if not threads.put(q_batches, batch):
                    return
                batch, n_faces = [], 0
        if batch:
            threads.put(q_batches, batch)
        threads.put(q_batches, _END)

    def infer() -> None:
        for batch in threads.items(q_batches):
            faces = [f for item in batch for f in item.faces]
            # Split at batch_size: frames with many faces can overfill one batch.
            for lo in range(0, len(faces), cfg.batch_size):
                part = faces[lo : lo + cfg.batch_size]
                crops = _stack_crops([f.crop for f in part])
                try:
                    swapped = swapper(crops)
                    segment = None if predictor is None else predictor(crops)
                    segment_swap = (
                        predictor(swapped.faces)
                        if predictor is not None and needs_segment_swap
                        else None
                    )
                except (RuntimeError, torch.OutOfMemoryError) as exc:
                    if not is_out_of_memory(exc):
                        raise
                    fixes = "" if cfg.amp else " or add --amp"
                    raise out_of_memory_error(device, cfg.batch_size, fixes) from None
                for i, face in enumerate(part):
                    face.swapped = swapped.faces[i]
                    face.learned = None if swapped.masks is None else swapped.masks[i]
                    if swapped.dst_masks is not None:
                        face.learned_dst = swapped.dst_masks[i]
                    if segment is not None:
                        face.segment = segment[i]
                    if segment_swap is not None:
                        face.segment_swap = segment_swap[i]
            if not threads.put(q_swapped, batch):
                return
        threads.put(q_swapped, _END)

    def finish(item: _Item) -> _Item:
        index = item.frame.index
        frame_cfg = next(
            (v for frames, v in reversed(variants) if in_frame_ranges(index, frames)), cfg
        )
        item.image = _compose(item, frame_cfg, res, coverage=marker is not None or bool(plates))
        if marker is not None:
            item.image = marker(item.image, item.frame.index, item.matte)
        if cfg.matte is None and not plates:
            item.matte = None  # only the marker asked for it
        return item

    def blend() -> None:
        # OpenCV releases the GIL, so a few workers blend the frames of a batch in parallel
        # (Poisson cloning costs ~10-20 ms a face); map() keeps them in order.
        workers = max(1, min(4, (os.cpu_count() or 1)))
        with concurrent.futures.ThreadPoolExecutor(workers, "convert-blend") as pool:
            for batch in threads.items(q_swapped):
                for item in pool.map(finish, batch):
                    if not threads.put(q_out, item):
                        return
        threads.put(q_out, _END)

    frames_swapped = faces_swapped = 0
    to_write = source.frame_count
    if cfg.ranges_only and to_write:
        to_write = sum(in_frame_ranges(i, cfg.frame_ranges) for i in range(to_write))
    encode_start = time.perf_counter()
    progress: Any = _NoProgress()
    try:
        # The matte opens inside the output's block: if it fails, the output is removed too.
        with _sigterm_as_interrupt(), sink, open_matte() as matte_sink:
            if isinstance(sink, _FolderSink):
                done = sink.done & matte_sink.done if matte_sink is not None else sink.done
                frames_swapped = sink.progress.get("frames_swapped", 0)
                faces_swapped = sink.progress.get("faces_swapped", 0)
                if done:
                    log.info("%s: resuming after %d frames", output, len(done))
            progress = _progress(cfg.progress, max(to_write - len(done), 0), Path(cfg.input).name)
            if isinstance(sink, _VideoSink):  # the encoder's options as ffmpeg gets them
                writes = " ".join(video_codec_args(codec, cfg.crf, cfg.preset,
                                                   sink.writer.pix_fmt)[1:])  # fmt: skip
            else:
                writes = f"{cfg.frame_format} frames" if as_frames else "one image"
            gaps = source.frame_count - len(locator.by_index) if locator.by_index else 0
            gaps = gaps if locator.finder is not None else 0
            header = _convert_header(cfg, source, output, preset, res, str(device), writes, gaps)
            log.info("%s", header)
            if cfg.progress:
                progress.write(header)
            try:
                for name, fn in (("decode", decode), ("prepare", prepare)):
                    threads.start(name, fn)
                threads.start("infer", infer)
                threads.start("blend", blend)
                for item in threads.items(q_out):
                    sink.write(_resized(item.image, out_size), item.frame.name, item.matte)
                    if matte_sink is not None:
                        matte_sink.write(_resized(item.matte, out_size), item.frame.name)
                    if item.faces:
                        frames_swapped += 1
                        faces_swapped += len(item.faces)
                    progress.update(1)
                # Join first: a failing thread records its error after passing the end on.
                threads.close()
            except BaseException:
                if isinstance(sink, _FolderSink) and sink.frames_written + len(done):
                    counts = {"frames_swapped": frames_swapped, "faces_swapped": faces_swapped}
                    with contextlib.suppress(FaceswapError):  # a full disk: keep the cause
                        sink.save_progress(counts)
                    log.warning(
                        "%s: stopped with %d frames written; the same command with --resume "
                        "goes on from there",
                        output,
                        sink.frames_written + len(done),
                    )
                raise
            threads.alive["convert-encode"] = time.perf_counter() - encode_start
            if threads.errors:
                raise threads.errors[0]
            if sink.frames_written == 0 and not done:
                raise FaceswapError(f"{cfg.input}: no frames could be decoded; check the file")
            if faces_swapped == 0:
                log.warning(
                    "%s: no face swapped in %d frames, so the output shows the input unchanged; "
                    "check --alignments, --ref, --min-size or try another --detector",
                    Path(cfg.input).name,
                    sink.frames_written,
                )
    finally:
        threads.close()
        progress.close()
        hasher.shutdown(wait=False)
    settings = config_to_dict(cfg)
    # Names only: the manifest travels with the video and should not leak local paths.
    for key in ("input", "model_dir", "output", "alignments", "matte", "mask_model"):
        if settings.get(key):
            settings[key] = Path(settings[key]).name
    settings["refs"] = [Path(p).name for p in cfg.refs]
    settings["not_refs"] = [Path(p).name for p in cfg.not_refs]
    settings["frame_ranges"] = format_frame_ranges(cfg.frame_ranges)  # type: ignore[arg-type]
    if isinstance(sink, _VideoSink):
        settings["pix_fmt"] = sink.writer.pix_fmt  # what auto resolved to
    manifest = write_manifest(
        output,
        model_sha256=loaded.weights_sha256,
        preset=preset,
        input_path=Path(cfg.input),
        input_sha256=input_hash.result() if input_hash else None,
        settings=settings,
        frames_total=sink.frames_written + len(done),
        frames_swapped=frames_swapped,
        faces_swapped=faces_swapped,
    )
    log.info(
        "convert %s: %d frames, %d faces; stage busy seconds %s",
        Path(cfg.input).name,
        sink.frames_written,
        faces_swapped,
        threads.busy(),
    )
    return ConvertResult(
        output=output,
        manifest=manifest,
        frames=sink.frames_written,
        frames_swapped=frames_swapped,
        faces_swapped=faces_swapped,
        seconds=time.perf_counter() - started,
        model_sha256=loaded.weights_sha256,
        device=str(device),
        stage_seconds=threads.busy(),
        matte=cfg.matte,
        resumed=len(done),
    )


@dataclass(frozen=True)
class ConvertFolderResult:
    """What :func:`run_convert_folder` did.

    Attributes:
        output: the folder the videos were written to.
        results: one :class:`ConvertResult` per video converted, in name order.
        failed: ``(video, reason)`` for each video that could not be converted.
        skipped: videos converted by an earlier run with the same model (``resume``).
    """

    output: Path
    results: tuple[ConvertResult, ...]
    failed: tuple[tuple[Path, str], ...] = ()
    skipped: tuple[Path, ...] = ()


def is_video_folder(path: Path | str) -> bool:
    """Whether ``path`` is a folder of videos (rather than a video or an image folder)."""
    from faceswap.io.video import list_inputs

    path = Path(path)
    return path.is_dir() and list_inputs(path) != [path]


def _alignments_for(root: Path | None, video: Path, videos: int) -> Path | None:
    """The alignments of ``video`` in the folder extract wrote for a folder of ``videos``
    videos: its subfolder named after the video, or the folder itself for a single one."""
    from faceswap.faces.alignments import ALIGNMENTS_NAME

    if root is None:
        return None
    if videos == 1 and (root / ALIGNMENTS_NAME).is_file():
        return root
    folder = root / video.stem
    if not (folder / ALIGNMENTS_NAME).is_file():
        raise FaceswapError(
            f"{root}: no alignments for {video.name} (looked for {folder / ALIGNMENTS_NAME}); "
            "extract the folder of videos into it, or drop --alignments to detect on the fly"
        )
    return folder


def run_convert_folder(cfg: ConvertConfig) -> ConvertFolderResult:
    """Convert every video of the folder ``cfg.input`` into the folder ``cfg.output``, under
    the same file names, each with its own manifest.

    ``cfg.alignments`` is then the folder ``faceswap extract`` wrote for the input folder
    (a subfolder per video) and ``cfg.matte`` a folder for the mattes. A video that fails
    (unreadable, no alignments) is reported in ``failed`` and the others still convert;
    each output is written atomically, so nothing is left half-written. With ``resume`` the
    videos an earlier, stopped run converted with the same model (output and manifest
    there) are skipped, and the others converted.

    Raises:
        FaceswapError: not a folder of videos, or an output or alignments path that cannot
            serve one.
    """
    import dataclasses

    from faceswap.io.video import list_inputs

    if not is_video_folder(cfg.input):
        raise FaceswapError(f"{cfg.input}: not a folder of videos; convert it with run_convert")
    videos = list_inputs(cfg.input)
    out_root = Path(cfg.output)
    if out_root.suffix.lower() in VIDEO_SUFFIXES or (out_root.exists() and not out_root.is_dir()):
        raise FaceswapError(
            f"{out_root}: a folder of videos converts into a folder; give a folder path"
        )
    if out_root.resolve() == Path(cfg.input).resolve():
        raise FaceswapError(f"{out_root}: would overwrite the input videos; choose another folder")
    if cfg.alignments is not None and not cfg.alignments.is_dir():
        raise FaceswapError(
            f"{cfg.alignments}: for a folder of videos --alignments is the folder `faceswap "
            "extract` wrote for it (a subfolder per video)"
        )
    ensure_writable_dir(out_root)
    results: list[ConvertResult] = []
    failed: list[tuple[Path, str]] = []
    skipped: list[Path] = []
    model_sha256 = _weights_sha256(cfg.model_dir) if cfg.resume else None
    for video in videos:
        output = out_root / video.name
        if model_sha256 is not None and _converted_with(output, model_sha256):
            skipped.append(video)
            continue
        try:
            per_video = dataclasses.replace(
                cfg,
                input=video,
                output=output,
                alignments=_alignments_for(cfg.alignments, video, len(videos)),
                matte=None if cfg.matte is None else Path(cfg.matte) / video.name,
                resume=False,  # a video is written whole
            )
            results.append(run_convert(per_video))
        except FaceswapError as exc:
            log.error("%s: not converted: %s", video.name, exc)
            failed.append((video, str(exc)))
    if skipped:
        log.info("%d videos were converted by an earlier run and are skipped", len(skipped))
    return ConvertFolderResult(
        output=out_root, results=tuple(results), failed=tuple(failed), skipped=tuple(skipped)
    )


def _weights_sha256(model_dir: Path) -> str:
    from faceswap.provenance import file_sha256
    from faceswap.train.checkpoint import WEIGHTS

    if not (Path(model_dir) / WEIGHTS).is_file():
        raise FaceswapError(f"{model_dir}: no such model folder (no {WEIGHTS}); check -m")
    return file_sha256(Path(model_dir) / WEIGHTS)


def _converted_with(output: Path, model_sha256: str) -> bool:
    """Whether ``output`` is whole and was converted with the model of that hash."""
    from faceswap.provenance import read_manifest

    manifest = read_manifest(output) if output.is_file() else None
    return bool(manifest) and (manifest or {}).get("model", {}).get("sha256") == model_sha256


def _scaled_size(width: int, height: int, percent: float) -> tuple[int, int]:
    """The frame size at ``percent``, each side even (4:2:0 video) unless it is the source's."""
    if percent >= 100:
        return width, height
    return (
        max(2, 2 * round(width * percent / 200.0)),
        max(2, 2 * round(height * percent / 200.0)),
    )


def _resized(image: Any, size: tuple[int, int]) -> Any:
    """``image`` at ``size`` (area filtering); as it is when it has that size."""
    if image is None or (image.shape[1], image.shape[0]) == size:
        return image
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def _stack_crops(crops: list[np.ndarray]) -> np.ndarray:
    """One (N, R, R, 3) batch of crops; 8-bit ones widened to 16 bits when the batch mixes
    them (an image folder of 8- and 16-bit frames)."""
    if all(c.dtype == crops[0].dtype for c in crops):
        return np.stack(crops)
    return np.stack([c if c.dtype == np.uint16 else c.astype(np.uint16) * 257 for c in crops])


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (a render farm or ``kill`` stopping the job) unwinds like Ctrl-C, so outputs
    are cleaned up and a frames folder is kept to resume; in the main thread only."""

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _crop_face(image: np.ndarray, matrix: np.ndarray, size: int) -> np.ndarray:
    """``warp_to_crop`` on just the part of the frame the crop covers.

    warp_to_crop pre-shrinks the whole image when the face is large; cutting the face's
    region out first makes that cost scale with the face, not the frame.
    """
    from faceswap.faces.align import invert_affine, warp_to_crop

    inv = invert_affine(matrix)
    corners = np.array([[0, 0], [size, 0], [0, size], [size, size]], np.float64)
    pts = corners @ inv[:, :2].T + inv[:, 2]
    h, w = image.shape[:2]
    x0 = min(max(int(np.floor(pts[:, 0].min())) - 2, 0), w - 1)
    y0 = min(max(int(np.floor(pts[:, 1].min())) - 2, 0), h - 1)
    x1 = max(min(int(np.ceil(pts[:, 0].max())) + 3, w), x0 + 1)
    y1 = max(min(int(np.ceil(pts[:, 1].max())) + 3, h), y0 + 1)
    shifted = np.array(matrix, dtype=np.float64)[:2].copy()
    # Region pixel (u, v) is frame pixel (u + x0, v + y0).
    shifted[:, 2] += shifted[:, :2] @ np.array([x0, y0], np.float64)
    return warp_to_crop(image[y0:y1, x0:x1], shifted, size)


class _MotionTracker:
    """Sets each face's motion since the previous frame (``_Face.motion``, crop pixels).

    A face is matched to the nearest face of the frame before within half a face's size;
    one without a match (the first frame, a cut, a new face) is taken as still.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._last_index = -2
        self._centres: list[np.ndarray] = []  # the previous frame's faces, frame px

    def update(self, index: int, faces: list[_Face]) -> None:
        from faceswap.faces.align import invert_affine

        here = []
        for face in faces:
            inv = invert_affine(face.matrix)
            centre = inv[:, :2] @ np.full(2, self.size / 2.0) + inv[:, 2]
            side = self.size * float(np.sqrt(abs(np.linalg.det(inv[:, :2]))))
            here.append(centre)
            if index != self._last_index + 1 or not self._centres:
                continue
            moves = [centre - before for before in self._centres]
            move = min(moves, key=lambda m: float(np.hypot(*m)))
            if np.hypot(*move) < side / 2:
                dx, dy = np.asarray(face.matrix, np.float64)[:2, :2] @ move
                face.motion = (float(dx), float(dy))
        self._last_index, self._centres = index, here


def _compose(item: _Item, cfg: ConvertConfig, res: int, *, coverage: bool = False) -> Any:
    """The output frame of ``item``: its decoded image with each swapped face pasted in.

    ``cfg`` holds the frame's blend settings (``blend_ranges`` applied). With ``cfg.matte``
    or ``coverage`` it also sets ``item.matte``: where the faces were blended in."""
    mask_mode, colour_mode = MASK_MODES.get(cfg.mask), COLOUR_MODES.get(cfg.colour)
    grade = Grade(**{name: getattr(cfg, name) for name in GRADE_KEYS})
    if cfg.matte is not None or coverage:
        item.matte = np.zeros(item.frame.image.shape[:2], np.uint8)
    if not item.faces:
        return item.frame.image  # passes through byte for byte
    image = np.array(item.frame.image, copy=True)
    for i, face in enumerate(item.faces):
        assert face.swapped is not None
        swapped = face.swapped
        if cfg.sharpen > 0:
            swapped = sharpen(swapped, cfg.sharpen, radius=max(res / 128.0, 0.5))
        elif cfg.sharpen < 0:
            swapped = soften(swapped, -cfg.sharpen * 0.03 * res)
        if cfg.motion_blur > 0:
            dx, dy = (cfg.motion_blur * m for m in face.motion)
            # A streak past a quarter of the face is a tracking slip, not motion.
            reach = min(1.0, res / 4.0 / max(float(np.hypot(dx, dy)), 1e-9))
            swapped = motion_blur(swapped, dx * reach, dy * reach)
        raw = mask_mode.build(
            face.crop_landmarks,
            res,
            face.learned,
            learned_dst=face.learned_dst,
            segment=face.segment,
            segment_swap=face.segment_swap,
        )
        original = face.crop.astype(np.float32) / peak_value(face.crop)
        swapped = np.clip(colour_mode.transfer(swapped, original, raw), 0.0, 1.0)
        swapped = grade.apply(swapped, raw)
        sides = (cfg.erode_top, cfg.erode_bottom, cfg.erode_left, cfg.erode_right)
        blend_mask = refine_mask(raw, erode=cfg.erode, blur=cfg.blur, sides=sides)
        matrix = face.matrix
        if cfg.face_scale:
            matrix = scale_about_centre(matrix, 1.0 + cfg.face_scale / 100.0, res)
        paste_face(image, swapped.astype(np.float32), blend_mask, matrix,
                   seamless=colour_mode.seamless, matte=item.matte, grain=cfg.grain,
                   seed=(item.frame.index, i))  # fmt: skip
    return image


def _convert_header(
    cfg: ConvertConfig,
    source: Any,
    output: Path,
    preset: str | None,
    resolution: int,
    device: str,
    writes: str,
    gaps: int = 0,
) -> str:
    """One line saying what a convert is about to do: the input, the model and device, where
    the faces come from, the blend, and what is written how."""
    bits = source.info.bit_depth if source.is_video and source.info is not None else 16
    depth = f", {bits}-bit" if source.deep else ""
    what = counted(source.frame_count, "frame" if source.is_video else "image")
    rate = f", {float(source.fps):.4g} fps" if source.is_video else ""
    faces = (
        f"faces from {Path(cfg.alignments).name}"
        if cfg.alignments is not None
        else f"faces found by {cfg.detector}"
    )
    if gaps:
        faces += f" and found by {cfg.detector} in the {counted(gaps, 'frame')} it leaves out"
    amp = ", amp" if cfg.amp else ""
    return (
        f"converting {Path(cfg.input).name} ({source.width}x{source.height}{rate}, {what}"
        f"{depth}) with {preset or 'the model'} ({resolution} px) on {device}{amp}, "
        f"{cfg.direction}: {faces}; mask {cfg.mask}, colour {cfg.colour}; writing {output} "
        f"({writes})"
    )


class _NoProgress:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(enabled: bool, total: int, name: str) -> Any:
    if not enabled:
        return _NoProgress()
    from tqdm import tqdm

    return tqdm(total=total or None, unit="frame", desc=f"convert {name}", leave=False)

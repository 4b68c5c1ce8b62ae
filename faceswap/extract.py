"""The extract stage: find, landmark, align and crop every face of a video or image folder.

``run_extract(ExtractConfig(...))`` reads a video, an image folder or a folder of videos and
writes, per source, the aligned crops ``<frame-name>_<face>.png`` and ``alignments.json``
(:mod:`faceswap.faces.alignments`) into the output folder (one subfolder per video when the
input is a folder of videos), plus ``extract_config.json`` with the settings used.

A rerun on the same output resumes: frames already in ``alignments.json`` are skipped.

With ``from_faces`` nothing is detected: the faces an earlier extract found (and the review
kept) are cut again from the same source with another crop (size, centering, coverage), from
their stored landmarks, under their names there; painted masks follow, re-warped.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, NamedTuple

import cv2
import numpy as np

from faceswap.config import config_to_dict, dump_json
from faceswap.errors import FaceswapError
from faceswap.faces.align import CENTERINGS, CropSpec, warp_to_crop
from faceswap.faces.alignments import (
    ALIGNMENTS_NAME,
    Alignments,
    FrameRecord,
    load_alignments,
    reviewed_frames,
    save_alignments,
)
from faceswap.faces.detectors import DETECTOR_CHOICES, Detector
from faceswap.faces.finder import FaceFinder, detector_for
from faceswap.faces.identity import DEFAULT_THRESHOLD, IdentityFilter
from faceswap.faces.lighting import NORMALISERS
from faceswap.faces.rotation import as_rotations
from faceswap.faces.smoothing import SEQUENCE_FPS, SMOOTHING_METHODS, LandmarkSmoother
from faceswap.io.files import atomic_path, ensure_writable_dir, write_text_atomic
from faceswap.ranges import FrameRange, as_frame_ranges, format_frame_ranges, in_frame_ranges
from faceswap.text import counted, index_ranges

log = logging.getLogger(__name__)

CONFIG_NAME = "extract_config.json"
SMOOTH_CHOICES = ("none", *SMOOTHING_METHODS)


@dataclass(frozen=True)
class ExtractConfig:
    """Settings of one extract run.

    Attributes:
        input: a video file, a folder of images, or a folder of videos.
        output: folder for crops and ``alignments.json`` (created; subfolders per video).
        detector: ``auto``, ``dlib-hog``, ``dlib-cnn`` or ``fan``.
        device: torch device for torch backends (``auto``, ``cpu``, ``cuda``...).
        size: crop side in pixels.
        coverage: fraction of the crop the ``centering`` region fills (0-1].
        centering: ``face``, ``legacy`` or ``head`` (see :mod:`faceswap.faces.align`).
        every_nth: process every n-th frame of a video (1 = all).
        detect_every: run the detector every n processed frames and track in between
            (videos only; image folders detect on every image).
        min_size: smallest face to keep, box side in frame pixels (0 = the detector's own
            minimum, about 80 px for dlib; smaller values upsample and are slower).
        max_faces: keep at most this many faces per frame, largest first (0 = all).
        rotate: where no face is found upright, also look in the frame turned by these
            angles (degrees clockwise; a step or list as text, see
            :func:`~faceswap.faces.rotation.parse_rotations`), and follow turned faces.
        refeed: fit each face's landmarks this many more times in slightly moved boxes and
            average them (steadier crops; see :mod:`faceswap.faces.refeed`).
        normalise: even out the luma of the copy the detector and landmark model look at
            (``none``, ``clahe``, ``hist``, ``mean``; see :mod:`faceswap.faces.lighting`).
        refs: photos of the one person to keep; others are ignored.
        not_refs: photos of people to leave out (all others are kept, or with ``refs`` those
            nearer the reference person).
        ref_threshold: largest identity distance still counted as the reference person.
        smooth: temporal landmark smoothing for videos: ``one-euro``, ``ema`` or ``none``.
        descriptors: store each face's 128-D identity descriptor in the alignments.
        resume: skip frames already in an existing ``alignments.json``; False starts over.
        png_compression: zlib level 0-9 of the crops (1 is fast and only a little larger).
        progress: show a progress bar.
        sequence: an image folder holds the frames of one shot (an EXR or PNG plate
            sequence): its faces are tracked and smoothed as a video's (``detect_every``,
            ``smooth``, at 24 frames/s), rather than each image found on its own.
        workers: processes to find faces on: 0 = one per core (at most
            :data:`AUTO_WORKERS`), 1 = this process only. A folder of images shares out its
            images (from :data:`PARALLEL_FROM`), a video (or image sequence) its stretches
            of :data:`STRETCH` frames; the faces are the same whatever the number.
        save_every: write the alignments at least every n frames (and every quarter of the
            frames done so far, whichever is longer) so an interrupted run can resume.
        debug_frames: also write each processed frame, with its faces' boxes, 68 landmarks
            and crop outlines drawn, as a JPEG into this folder (DeepFaceLab's
            ``aligned_debug``; a subfolder per video of a folder), to review the alignment.
        frame_ranges: extract only these frames (``(first, last)`` inclusive, ``last`` None
            for the rest; or the text ``"1200-1450,3000-"``), as convert's ``frame_ranges``:
            a scene of a long film. Empty: every frame.
        redo_empty: detect again, with this run's detector settings, only in the frames the
            extract already in ``output`` found no face in (on its ``every_nth`` frames),
            keeping every face it found; a source with no earlier extract there is
            extracted in full.
        from_faces: an earlier extract's faces folder (or its ``alignments.json``): re-crop
            the faces it holds with this run's crop instead of detecting (for a folder of
            videos, the folder holding a subfolder per video).
    """

    input: Path
    output: Path
    detector: str = "auto"
    device: str = "auto"
    size: int = 256
    coverage: float = 0.8
    centering: str = "face"
    every_nth: int = 1
    detect_every: int = 5
    min_size: int = 0
    max_faces: int = 0
    rotate: tuple[float, ...] | str = ()
    normalise: str = "none"
    refeed: int = 0
    refs: tuple[Path, ...] = ()
    ref_threshold: float = DEFAULT_THRESHOLD
    not_refs: tuple[Path, ...] = ()
    smooth: str = "one-euro"
    descriptors: bool = False
    resume: bool = True
    png_compression: int = 1
    progress: bool = True
    workers: int = 0
    sequence: bool = False
    save_every: int = 200
    from_faces: Path | None = None
    debug_frames: Path | None = None
    redo_empty: bool = False
    frame_ranges: tuple[FrameRange, ...] | str = ()

    def __post_init__(self) -> None:
        # Configs built from YAML or JSON carry strings; keep the fields' declared types.
        object.__setattr__(self, "input", Path(self.input))
        object.__setattr__(self, "output", Path(self.output))
        object.__setattr__(self, "refs", tuple(Path(p) for p in self.refs))
        object.__setattr__(self, "not_refs", tuple(Path(p) for p in self.not_refs))
        object.__setattr__(self, "rotate", as_rotations(self.rotate))
        object.__setattr__(self, "frame_ranges", as_frame_ranges(self.frame_ranges))
        if self.debug_frames is not None:
            object.__setattr__(self, "debug_frames", Path(self.debug_frames))
        if self.redo_empty and (self.from_faces is not None or not self.resume):
            other = (
                "--from-faces re-crops without detecting"
                if self.from_faces
                else ("--no-resume deletes the faces it would keep")
            )
            raise FaceswapError(
                f"--redo-empty detects again where an earlier extract found no face, and "
                f"{other}: choose one"
            )
        if self.from_faces is not None:
            object.__setattr__(self, "from_faces", Path(self.from_faces))
            finding = [
                ("--ref", bool(self.refs)),
                ("--not-ref", bool(self.not_refs)),
                ("--every-nth", self.every_nth != 1),
                ("--min-size", self.min_size != 0),
                ("--max-faces", self.max_faces != 0),
                ("--rotate", bool(self.rotate)),
                ("--normalise", self.normalise != "none"),
                ("--refeed", self.refeed != 0),
                ("--descriptors", self.descriptors),
            ]
            given = [name for name, set_ in finding if set_]
            if given:
                raise FaceswapError(
                    f"--from-faces re-crops the faces an earlier extract found; "
                    f"{', '.join(given)} choose faces while detecting: drop "
                    f"{'it' if len(given) == 1 else 'them'} or extract afresh"
                )
        checks = [
            (self.detector in DETECTOR_CHOICES, f"--detector: choose from {DETECTOR_CHOICES}"),
            (self.size >= 16, f"--size must be at least 16 pixels, got {self.size}"),
            (0 < self.coverage <= 1, f"--coverage must be in (0, 1], got {self.coverage}"),
            (self.centering in CENTERINGS, f"--centering: choose from {', '.join(CENTERINGS)}"),
            (self.every_nth >= 1, f"--every-nth must be >= 1, got {self.every_nth}"),
            (self.detect_every >= 1, f"--detect-every must be >= 1, got {self.detect_every}"),
            (self.min_size >= 0, f"--min-size must be >= 0, got {self.min_size}"),
            (self.max_faces >= 0, f"--max-faces must be >= 0, got {self.max_faces}"),
            (0 <= self.refeed <= 64, f"--refeed must be in 0-64 fits, got {self.refeed}"),
            (self.workers >= 0, f"--workers must be 0 (one per core) or more, got {self.workers}"),
            (0 < self.ref_threshold < 2, "--ref-threshold must be in (0, 2)"),
            (self.normalise in NORMALISERS, f"--normalise: choose from {', '.join(NORMALISERS)}"),
            (self.smooth in SMOOTH_CHOICES, f"--smooth: choose from {', '.join(SMOOTH_CHOICES)}"),
            (0 <= self.png_compression <= 9, "png_compression must be 0-9"),
        ]
        for ok, message in checks:
            if not ok:
                raise FaceswapError(message)

    @property
    def crop(self) -> CropSpec:
        return CropSpec(size=self.size, coverage=self.coverage, centering=self.centering)


@dataclass(frozen=True)
class SourceResult:
    """What extract did for one video or image folder."""

    source: Path
    output: Path
    alignments: Path | None
    frames: int
    resumed: int
    faces: int
    frames_without_face: int
    seconds: float
    empty_frames: tuple[int, ...] = ()
    empty_names: tuple[str, ...] = ()
    video: bool = True
    step: int = 1

    def no_face_line(self) -> str:
        """Which processed frames had no face: ``"clip.mp4: no face in frames 100-109, 250"``
        (frame numbers of a video, file names of an image folder); "" when none."""
        if not self.empty_frames:
            return ""
        if self.video:
            where = "frames " + index_ranges(list(self.empty_frames), self.step)
        else:
            names = self.empty_names
            where = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        return f"{self.source.name}: no face in {where}"


@dataclass(frozen=True)
class ExtractResult:
    """Totals of an extract run.

    Attributes:
        output: the output folder.
        sources: per-source results (one per video or image folder).
        detector: backend actually used, and ``detector_reason`` why.
        frames: frames processed in this run (resumed frames excluded).
        resumed: frames skipped because an earlier run had done them.
        faces: faces written in this run.
        frames_without_face: processed frames with no (wanted) face.
        seconds: wall time of the run; ``fps`` = frames / seconds.
        failed: (video, error) of each video of a folder that could not be extracted (the
            others were).
    """

    output: Path
    sources: tuple[SourceResult, ...]
    detector: str
    detector_reason: str
    frames: int
    resumed: int
    faces: int
    frames_without_face: int
    seconds: float
    failed: tuple[tuple[Path, str], ...] = ()

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        """One closing line: frames, faces, frames without a face, seconds, fps."""
        resumed = f" ({self.resumed} already done)" if self.resumed else ""
        return (
            f"extracted {counted(self.faces, 'face')} from {counted(self.frames, 'frame')}"
            f"{resumed}; {counted(self.frames_without_face, 'frame')} without a face; "
            f"{self.seconds:.1f} s, {self.fps:.1f} frames/s; detector {self.detector}"
        )


def _open(path: Path) -> Any:
    from faceswap.io.video import open_source

    return open_source(path)


def _inputs(path: Path) -> list[Path]:
    from faceswap.io.video import list_inputs

    return list_inputs(path)


def run_extract(cfg: ExtractConfig) -> ExtractResult:
    """Detect, landmark, align and crop every face of ``cfg.input`` into ``cfg.output``.

    Raises:
        FaceswapError: missing/unreadable input, unwritable output, a detector that cannot
            load, reference photos without a face, or no face in the whole input.
    """
    started = time.perf_counter()
    if not Path(cfg.input).exists():
        raise FaceswapError(f"{cfg.input}: no such file or folder; check the input path")
    sources = _inputs(Path(cfg.input))
    out_root = Path(cfg.output)
    _check_output_folder(Path(cfg.input), out_root)
    if cfg.debug_frames is not None and cfg.debug_frames.exists():
        ensure_writable_dir(cfg.debug_frames)  # a file there: one line before anything is made
    if out_root.exists():
        ensure_writable_dir(out_root)  # else made once its first input proves readable
    several = len(sources) > 1
    detector: Detector | None = None
    identity = None
    if cfg.from_faces is None:
        detector = detector_for(cfg)
        log.info("detector %s (%s)", detector.name, detector.reason)
        if cfg.refs or cfg.not_refs:
            identity = IdentityFilter.from_photos(
                cfg.refs, detector, cfg.ref_threshold, exclude=cfg.not_refs
            )
        detector_name, detector_reason = detector.name, detector.reason
    else:
        if not cfg.from_faces.exists():
            raise FaceswapError(
                f"--from-faces {cfg.from_faces}: no such folder or file; pass the faces folder "
                "of an earlier extract"
            )
        earlier_root = cfg.from_faces if cfg.from_faces.is_dir() else cfg.from_faces.parent
        if earlier_root.resolve() == out_root.resolve():
            raise FaceswapError(
                f"-o {out_root} is the --from-faces folder: the new crops would overwrite the "
                "ones they are cut by; give them a folder of their own (e.g. -o faces_512)"
            )
        detector_name = "none"
        detector_reason = f"none: re-cropped the faces found before in {cfg.from_faces}"
    results = []
    failed: list[tuple[Path, str]] = []

    def extract_one(src_path: Path) -> SourceResult:
        folder = out_root / src_path.stem if several else out_root
        earlier = None
        if cfg.from_faces is not None:
            earlier = _earlier_alignments(cfg.from_faces, src_path, several)
        debug = cfg.debug_frames
        if debug is not None and several:
            debug = debug / src_path.stem
        return _extract_source(cfg, src_path, folder, detector, identity, earlier, debug)

    for src_path in sources:
        if not several:
            results.append(extract_one(src_path))
            continue
        try:  # one bad video of a folder does not stop the others (convert does the same)
            results.append(extract_one(src_path))
        except FaceswapError as exc:
            log.error("%s: not extracted: %s", src_path.name, exc)
            failed.append((src_path, str(exc)))
    if not results:
        raise FaceswapError(
            f"{cfg.input}: none of its {len(failed)} videos could be extracted; see the "
            "errors above"
        )
    faces = sum(r.faces for r in results)
    done_before = sum(r.resumed for r in results)
    if faces == 0 and not any(r.alignments for r in results):
        frames = sum(r.frames for r in results)
        raise FaceswapError(
            f"{cfg.input}: no face found in {frames} frames; check that faces are visible and "
            "at least 80 px tall, lower --min-size, try --normalise mean (a dark shot), "
            "--rotate 45 (turned faces) or --detector dlib-cnn or fan"
        )
    result = ExtractResult(
        output=out_root,
        sources=tuple(results),
        detector=detector_name,
        detector_reason=detector_reason,
        frames=sum(r.frames for r in results),
        resumed=done_before,
        faces=faces,
        frames_without_face=sum(r.frames_without_face for r in results),
        seconds=time.perf_counter() - started,
        failed=tuple(failed),
    )
    record = config_to_dict(cfg)
    record.update(detector_used=detector_name, detector_reason=detector_reason)
    write_text_atomic(out_root / CONFIG_NAME, dump_json(record))
    return result


def _check_output_folder(source: Path, output: Path) -> None:
    """Refuse an output folder where the crops would mix with other files that matter: the
    input images themselves (a rerun would take the crops for input), or a model."""
    if source.is_dir() and output.resolve() == source.resolve():
        raise FaceswapError(
            f"-o {output} is the input folder: the crops would mix with its images; give "
            "the faces a folder of their own (e.g. -o faces)"
        )
    # The train modules' own names for these files (checkpoint.MODEL_JSON, segment.CARD)
    # would import torch into every extract run's start-up.
    for name, what in (("model.json", "face-swap model"), ("segmenter.json", "mask model")):
        if (output / name).is_file():
            raise FaceswapError(
                f"-o {output} holds a {what}; give the faces a folder of their own (e.g. -o faces)"
            )


def _existing(cfg: ExtractConfig, folder: Path, source: Path, crop: CropSpec) -> Alignments | None:
    path = folder / ALIGNMENTS_NAME
    if not path.exists():
        return None
    if not cfg.resume:
        old = None
        with contextlib.suppress(FaceswapError):
            old = load_alignments(path)
        if old is not None:
            from faceswap.sort import TRASH_DIR

            # The crops it names, also those `faceswap sort --keep` moved to its trash.
            for fr in old.frames:
                for face in fr.faces:
                    if face.crop_file:
                        for place in (folder, folder / TRASH_DIR):
                            with contextlib.suppress(FileNotFoundError):
                                (place / face.crop_file).unlink()
        path.unlink()
        return None
    old = load_alignments(path)
    if Path(old.source).resolve() != source.resolve() or old.crop != crop:
        raise FaceswapError(
            f"{path}: holds faces of {old.source} with crop {old.crop}; use --no-resume to "
            "start over or choose another output folder"
        )
    return old


def _extract_source(
    cfg: ExtractConfig,
    source: Path,
    folder: Path,
    detector: Detector | None,
    identity: IdentityFilter | None,
    earlier: Path | None = None,
    debug: Path | None = None,
) -> SourceResult:
    t0 = time.perf_counter()
    ranges: tuple[FrameRange, ...] = cfg.frame_ranges  # type: ignore[assignment]
    src = _open(source)  # before the folder: an unreadable input leaves nothing behind
    # The frames of a video, or of a shot as an image sequence: faces tracked and smoothed.
    tracked = bool(src.is_video or cfg.sequence)
    crop = cfg.crop
    replay = None if earlier is None else _Replay(earlier, source, src, crop)
    folder = ensure_writable_dir(folder)
    if debug is not None:
        debug = ensure_writable_dir(debug)
    al = _existing(cfg, folder, source, crop)
    resumed_frames = 0
    if al is None:
        if replay is not None:
            al = replay.new_alignments(source)
        else:
            assert detector is not None
            al = Alignments(
                source=str(source),
                frame_count=int(src.frame_count),
                fps=src.fps,
                width=int(src.width),
                height=int(src.height),
                crop=crop,
                detector=detector.name,
                extra={
                    "detector_reason": detector.reason,
                    "every_nth": cfg.every_nth,
                    "detect_every": cfg.detect_every if tracked else 1,
                    "smooth": cfg.smooth if tracked else "none",
                    "sequence": cfg.sequence,
                    "min_size": cfg.min_size,
                    "max_faces": cfg.max_faces,
                    "rotate": list(cfg.rotate),
                    "normalise": cfg.normalise,
                    "refeed": cfg.refeed,
                    "frame_ranges": format_frame_ranges(ranges),
                    "refs": [str(p) for p in cfg.refs],
                    "not_refs": [str(p) for p in cfg.not_refs],
                    "ref_threshold": cfg.ref_threshold,
                },
            )
    else:
        resumed_frames = len(al.frames)
    step = cfg.every_nth
    redo: dict[str, Any] | None = None
    emptied: list[int] = []
    if cfg.redo_empty and resumed_frames:
        step = int(al.extra.get("every_nth", 1))
        emptied = [f.index for f in al.frames if not f.faces and in_frame_ranges(f.index, ranges)]
        again = set(emptied)
        al.frames = [f for f in al.frames if f.index not in again]
        resumed_frames = len(al.frames)
        assert detector is not None
        redo = {"detector": detector.name, "rotate": list(cfg.rotate), "min_size": cfg.min_size,
                "normalise": cfg.normalise, "frames": len(emptied)}  # fmt: skip
        if ranges:
            redo["frame_ranges"] = format_frame_ranges(ranges)
        al.extra.setdefault("redone_empty", []).append(redo)
        log.info("%s: detecting again in %d frames without a face", source.name, len(emptied))
    done = {f.index for f in al.frames}
    fps = float(src.fps) if src.fps else SEQUENCE_FPS
    finder = None
    if replay is None:
        assert detector is not None
        finder = _stage_finder(cfg, detector, crop, identity, tracked, fps)
    if redo is not None:
        todo = emptied
    else:
        grid = range(0, int(src.frame_count), step)
        todo = [i for i in grid if i not in done and in_frame_ranges(i, ranges)]
    if replay is not None:
        todo = [i for i in todo if i in replay.frames]
    params = [cv2.IMWRITE_PNG_COMPRESSION, int(cfg.png_compression)]
    bar = _progress(cfg, len(todo), source.name)
    frames = faces = empty = 0
    since_save = 0
    empty_frames: list[int] = []
    empty_names: list[str] = []
    stretches = _stretches(todo, step) if tracked and replay is None else []
    along = _tracked_workers(cfg, stretches)
    workers = _image_workers(cfg, src, todo, replay is not None, debug is not None)
    if along > 1:
        assert detector is not None
        log.info("%s: finding faces in %d frames on %d processes, %d frames at a time",
                 source.name, len(todo), along, STRETCH)  # fmt: skip

        def rest_here(rest: list[int]) -> Iterator[_Work]:
            return _sequential_work(src, rest, step, finder, None, tracked)

        work = _parallel_tracked_work(
            _TrackedJob(replace(cfg, detector=detector.name), identity, source, folder, debug,
                        params, step, fps, crop, WARM),
            stretches, along, rest_here,
        )  # fmt: skip
    elif workers > 1:
        assert detector is not None
        log.info("%s: finding faces in %d images on %d processes", source.name, len(todo),
                 workers)  # fmt: skip

        def fallback(rest: list[int]) -> Iterator[_Work]:
            return _sequential_work(src, rest, step, finder, None, tracked)

        work = _parallel_work(replace(cfg, detector=detector.name), identity, src.files, todo,
                              crop, workers, fallback)  # fmt: skip
    else:
        work = _sequential_work(src, todo, step, finder, replay, tracked)
    # PNG encoding releases the GIL: a writer thread overlaps it with the next detection.
    writer = _CropWriter(params)
    try:
        for index, timestamp, frame_name, image, found, detected, crops, written in work:
            bar.update(1)
            records = list(found) if written else []
            for k, face in enumerate(() if written else found):
                name = face.crop_file or f"{frame_name}_{k}.png"
                cut = crops[k] if crops is not None else None
                if cut is None:
                    cut = warp_to_crop(image, face.matrix, crop.size)
                writer.put(folder / name, cut)
                records.append(replace(face, crop_file=name))
            if replay is not None:
                replay.move_masks(index, records, folder)
            if debug is not None and not written:
                drawn = draw_alignments(image, records, crop.size)
                writer.put_image(debug / f"{frame_name}.jpg", drawn)
            al.frames.append(FrameRecord(index, timestamp, tuple(records), detected))
            frames += 1
            faces += len(records)
            empty += not records
            if not records:
                empty_frames.append(index)
                empty_names.append(frame_name)
            since_save += 1
            # Each save rewrites the whole file, so the interval grows with it: a two-hour
            # video costs a few full writes, not thousands.
            if since_save >= max(cfg.save_every, len(al.frames) // 4) and al.face_count:
                writer.drain()  # the alignments never name a crop that is not on disk
                al.frames.sort(key=lambda f: f.index)
                save_alignments(folder / ALIGNMENTS_NAME, al)
                since_save = 0
        writer.drain()
    except KeyboardInterrupt:
        writer.drain()
        if al.face_count:
            al.frames.sort(key=lambda f: f.index)
            save_alignments(folder / ALIGNMENTS_NAME, al)
        raise
    finally:
        writer.close()
        bar.close()
    if redo is not None:
        redo["found"] = frames - empty
    path: Path | None = folder / ALIGNMENTS_NAME
    if al.face_count:
        al.frames.sort(key=lambda f: f.index)
        save_alignments(path, al)
    else:
        log.warning("%s: no face found in %d frames", source, frames)
        path = None
    return SourceResult(
        source=source,
        output=folder,
        alignments=path,
        frames=frames,
        resumed=resumed_frames,
        faces=faces,
        frames_without_face=empty,
        seconds=time.perf_counter() - t0,
        empty_frames=tuple(empty_frames),
        empty_names=tuple(empty_names),
        video=bool(src.is_video),
        step=step,
    )


class _Work(NamedTuple):
    """One frame's faces, found: what the writing loop of :func:`_extract_source` takes."""

    index: int
    timestamp: float
    name: str
    image: np.ndarray | None  # the frame, where the crops are still to be cut from it
    found: Any  # FaceRecords (crop_file empty, or the name --from-faces keeps)
    detected: bool
    crops: list[np.ndarray] | None  # cut already (on a worker process)
    written: bool = False  # crops (and review frames) written already, named in ``found``


def _sequential_work(
    src: Any,
    todo: list[int],
    step: int,
    finder: FaceFinder | None,
    replay: Any,
    tracked: bool,
) -> Iterator[_Work]:
    """Faces frame by frame in this process: ``tracked`` through a video (or an image
    sequence), else each image of a folder on its own (unrelated photos: a face is not
    followed from one to the next)."""
    if tracked and replay is None:
        assert finder is not None
        for stretch in _stretches(todo, step):
            for frame, found, detected in _track_stretch(src, stretch, step, finder, WARM):
                yield _Work(frame.index, frame.timestamp, frame.name, frame.image, found,
                            detected, None)  # fmt: skip
        return
    last_index = None
    for frame in _frames_to_do(src, todo, step):
        if finder is not None and (
            not tracked or (last_index is not None and frame.index != last_index + step)
        ):
            finder.reset()  # faces are not followed across frames done before
        last_index = frame.index
        if replay is not None:
            found, detected = replay.faces(frame.index), replay.frames[frame.index].detected
        else:
            assert finder is not None
            found = finder.find(frame.image, frame.timestamp)
            detected = finder.last_detected
        yield _Work(frame.index, frame.timestamp, frame.name, frame.image, found, detected, None)


#: A tracked video (or image sequence) is found in stretches of this many frames of its
#: grid, cut at fixed places: each starts afresh, so they can run on a process each and the
#: faces come out the same whatever the machine and the number of processes.
STRETCH = 480
#: Frames before a stretch found again and dropped, so that its tracking and smoothing are
#: under way where its output begins.
WARM = 24


def _stretches(todo: list[int], step: int) -> list[list[int]]:
    """``todo`` (sorted frames of the ``step`` grid) cut at gaps and every :data:`STRETCH`
    frames of the grid."""
    out: list[list[int]] = []
    span = STRETCH * step
    for index in todo:
        if out and index - out[-1][-1] == step and index // span == out[-1][-1] // span:
            out[-1].append(index)
        else:
            out.append([index])
    return out


def _track_stretch(
    src: Any, stretch: list[int], step: int, finder: FaceFinder, warm_frames: int
) -> Iterator[tuple[Any, list[Any], bool]]:
    """``(frame, faces, detected)`` of each frame of ``stretch``, tracked afresh from
    ``warm_frames`` frames (:data:`WARM`) before it."""
    finder.reset()
    warm = [i for i in range(stretch[0] - warm_frames * step, stretch[0], step) if i >= 0]
    wanted = set(stretch)
    for frame in _frames_to_do(src, warm + stretch, step):
        found = finder.find(frame.image, frame.timestamp)
        if frame.index in wanted:
            yield frame, found, finder.last_detected


#: Processes at most when ``workers`` is 0 (each holds its own models and decoder).
AUTO_WORKERS = 8


def _tracked_workers(cfg: ExtractConfig, stretches: list[list[int]]) -> int:
    """Processes to find a tracked source's stretches on (1: this one)."""
    cores = cfg.workers or min(os.cpu_count() or 1, AUTO_WORKERS)
    return 1 if cores < 2 or len(stretches) < 2 else min(cores, len(stretches))


@dataclass(frozen=True)
class _TrackedJob:
    """What a worker needs to find and write a tracked source's faces (picklable)."""

    cfg: ExtractConfig
    identity: IdentityFilter | None
    source: Path
    folder: Path
    debug: Path | None
    params: list[int]
    step: int
    fps: float
    crop: CropSpec
    warm: int


def _stage_finder(
    cfg: ExtractConfig,
    detector: Detector,
    crop: CropSpec,
    identity: IdentityFilter | None,
    tracked: bool,
    fps: float,
) -> FaceFinder:
    """The finder of one source: tracking and smoothing for a video or an image sequence,
    each image on its own for a folder of photos (in this process or a worker alike)."""
    smoother = None
    if tracked and cfg.smooth != "none":
        smoother = LandmarkSmoother(cfg.smooth, fps=fps)
    return FaceFinder(
        detector,
        crop,
        detect_every=cfg.detect_every if tracked else 1,
        min_size=cfg.min_size,
        max_faces=cfg.max_faces,
        identity=identity,
        smoother=smoother,
        descriptors=cfg.descriptors,
    )


def _start_worker() -> None:
    """What every face-finding worker process does first."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    cv2.setNumThreads(1)  # a process per core already: more threads would fight for them


def _on_processes(
    fn: Callable[[Any], Any],
    tasks: list[Any],
    workers: int,
    initializer: Callable[..., None],
    initargs: tuple[Any, ...],
    chunksize: int = 1,
) -> Iterator[Any]:
    """``fn`` of each task on ``workers`` spawned processes, results in order. Stops early,
    with a warning, when the processes fail (a worker killed for memory, or a program read
    from stdin, which cannot be spawned): the caller does the rest itself."""
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool
    from multiprocessing import get_context

    # Spawned, not forked: a fork copies the locks other threads hold at that moment.
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"),
                               initializer=initializer, initargs=initargs)  # fmt: skip
    try:
        yield from pool.map(fn, tasks, chunksize=chunksize)
    except BrokenProcessPool:
        log.warning("the face-finding processes stopped; going on in this one")
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _start_tracked_worker(job: _TrackedJob) -> None:
    _start_worker()
    _WORKER["job"] = job
    _WORKER["src"] = _open(job.source)
    _WORKER["finder"] = _stage_finder(job.cfg, detector_for(job.cfg), job.crop, job.identity,
                                      True, job.fps)  # fmt: skip


def _faces_in_stretch(stretch: list[int]) -> list[tuple[int, float, str, list[Any], bool]]:
    """Find, cut and write the faces of one stretch on a worker; their records, in order."""
    from faceswap.io.images import write_image

    job: _TrackedJob = _WORKER["job"]
    out = []
    for frame, found, detected in _track_stretch(_WORKER["src"], stretch, job.step,
                                                 _WORKER["finder"], job.warm):  # fmt: skip
        records = []
        for k, face in enumerate(found):
            name = f"{frame.name}_{k}.png"
            cut = warp_to_crop(frame.image, face.matrix, job.crop.size)
            _write_crop(job.folder / name, cut, job.params)
            records.append(replace(face, crop_file=name))
        if job.debug is not None:
            drawn = draw_alignments(frame.image, records, job.crop.size)
            write_image(job.debug / f"{frame.name}.jpg", drawn)
        out.append((frame.index, frame.timestamp, frame.name, records, detected))
    return out


def _parallel_tracked_work(
    job: _TrackedJob,
    stretches: list[list[int]],
    workers: int,
    fallback: Callable[[list[int]], Iterator[_Work]],
) -> Iterator[_Work]:
    """A tracked source's faces, its stretches found on ``workers`` processes (which write
    the crops), in order; ``fallback`` finds those left when the processes fail."""
    done = 0
    for found in _on_processes(_faces_in_stretch, stretches, workers, _start_tracked_worker,
                               (job,)):  # fmt: skip
        for index, timestamp, name, records, detected in found:
            yield _Work(index, timestamp, name, None, records, detected, None, True)
        done += 1
    yield from fallback([i for stretch in stretches[done:] for i in stretch])


#: Images to do from which a folder's faces are found on a process per core.
PARALLEL_FROM = 16


def _image_workers(cfg: ExtractConfig, src: Any, todo: list[int], replay: bool, debug: bool) -> int:
    """Processes to find an image folder's faces on: each image is found on its own, so the
    detector can run on every core (dlib holds the GIL: threads would not help); 1 for a
    video (tracked in order), a re-crop, review frames (drawn from the decoded image) or a
    few images."""
    cores = cfg.workers or min(os.cpu_count() or 1, AUTO_WORKERS)
    if src.is_video or cfg.sequence or replay or debug or cores < 2 or len(todo) < PARALLEL_FROM:
        return 1
    return min(cores, len(todo) // (PARALLEL_FROM // 2))


# A worker process's finder, built once by _start_image_worker.
_WORKER: dict[str, Any] = {}


def _start_image_worker(
    cfg: ExtractConfig, identity: IdentityFilter | None, crop: CropSpec
) -> None:
    _start_worker()
    _WORKER["crop"] = crop
    _WORKER["finder"] = _stage_finder(cfg, detector_for(cfg), crop, identity, False, SEQUENCE_FPS)


def _faces_in_image(path: str) -> tuple[list[Any], list[np.ndarray]]:
    from faceswap.io.images import read_image

    image = read_image(path)
    finder: FaceFinder = _WORKER["finder"]
    finder.reset()
    found = finder.find(image)
    size = _WORKER["crop"].size
    return found, [warp_to_crop(image, face.matrix, size) for face in found]


def _parallel_work(
    cfg: ExtractConfig,
    identity: IdentityFilter | None,
    files: list[Path],
    todo: list[int],
    crop: CropSpec,
    workers: int,
    fallback: Callable[[list[int]], Iterator[_Work]],
) -> Iterator[_Work]:
    """The faces of an image folder's images ``todo``, found on ``workers`` processes, in
    order; ``fallback`` finds those left when the processes fail."""
    done = 0
    paths = [str(files[i]) for i in todo]
    results = _on_processes(_faces_in_image, paths, workers, _start_image_worker,
                            (cfg, identity, crop), chunksize=4)  # fmt: skip
    for index, (found, crops) in zip(todo, results, strict=False):
        yield _Work(index, float(index), files[index].stem, None, found, True, crops)
        done += 1
    yield from fallback(todo[done:])


#: Frames to do this far apart or more are reached by a seek, not by decoding those between.
SEEK_GAP = 250


def _frames_to_do(src: Any, todo: list[int], step: int) -> Iterator[Any]:
    """The frames of ``src`` whose indices ``todo`` lists (sorted, on the ``step`` grid):
    decoding starts at the first, seeks across gaps of :data:`SEEK_GAP` frames or more (the
    scenes of ``--frame-ranges``, frames an earlier run did) and stops after the last."""
    wanted = set(todo)
    stretches: list[list[int]] = []
    for index in todo:
        if stretches and index - stretches[-1][1] < SEEK_GAP:
            stretches[-1][1] = index
        else:
            stretches.append([index, index])
    for first, last in stretches:
        frames = src.iter_frames(every_nth=step, start=first)
        try:
            for frame in frames:
                if frame.index > last:
                    break
                if frame.index in wanted:
                    yield frame
        finally:
            frames.close()  # stops the decoder now, not when the generator is collected


def _earlier_alignments(from_faces: Path, source: Path, several: bool) -> Path:
    """The alignments file of ``source``'s faces in ``from_faces`` (a faces folder, its
    alignments file, or with ``several`` sources the folder of per-video faces folders)."""
    if from_faces.is_file():
        if several:
            raise FaceswapError(
                f"--from-faces {from_faces}: one alignments file for a folder of videos; pass "
                "the folder holding a faces folder per video"
            )
        return from_faces
    candidates = [from_faces / source.stem / ALIGNMENTS_NAME] if several else []
    candidates.append(from_faces / ALIGNMENTS_NAME)
    for path in candidates:
        if path.is_file():
            return path
    raise FaceswapError(
        f"--from-faces {from_faces}: no {ALIGNMENTS_NAME} for {source.name} there; pass the "
        "faces folder an earlier `faceswap extract` of it wrote"
    )


class _Replay:
    """The faces an earlier extract of the same source found, re-aligned to another crop.

    Faces whose crops were deleted from the earlier faces folder stay deleted (as convert
    treats them), unless none of its crops is there (an alignments file on its own). Crop
    names are kept, so a ``faceswap sort`` order and the masks' pairing survive; painted
    masks are warped from the old crop into the new one (what the old crop did not show is
    not face); masks ``faceswap masks`` drew are left out (draw them again).
    """

    def __init__(self, path: Path, source: Path, src: Any, crop: CropSpec) -> None:
        from faceswap.faces.align import alignment_matrix
        from faceswap.sort import check_not_mid_sort

        check_not_mid_sort(path.parent, "--from-faces")
        self.path = path
        self.old = load_alignments(path)
        self.crop = crop
        if int(self.old.frame_count) != int(src.frame_count):
            raise FaceswapError(
                f"--from-faces {path}: made from {self.old.frame_count} frames of "
                f"{Path(self.old.source).name}, but {source.name} has {src.frame_count}; pass "
                "the faces extracted from this input"
            )
        if Path(self.old.source).name != source.name:
            log.warning("%s: made from %s, re-cropping %s (same frame count)", path,
                        self.old.source, source)  # fmt: skip
        folder = path.parent
        self.frames: dict[int, FrameRecord] = {}
        self._old_matrix: dict[str, np.ndarray] = {}
        for frame in reviewed_frames(self.old, folder)[0]:
            faces = []
            for face in frame.faces:
                name = Path(face.crop_file).name if face.crop_file else ""
                matrix = alignment_matrix(np.asarray(face.landmarks, np.float64), crop)
                faces.append(replace(face, matrix=matrix, crop_file=name))
                if name:
                    self._old_matrix[name] = np.asarray(face.matrix, np.float64)
            self.frames[frame.index] = replace(frame, faces=tuple(faces))
        self._masks = self._painted_masks(folder)

    @staticmethod
    def _painted_masks(folder: Path) -> dict[str, Path]:
        from faceswap.io.images import list_images
        from faceswap.train.dataset import MASKS_DIR, is_painted

        masks = folder / MASKS_DIR
        if not masks.is_dir():
            return {}
        return {p.stem: p for p in list_images(masks) if is_painted(p)}

    def new_alignments(self, source: Path) -> Alignments:
        extra = {k: v for k, v in self.old.extra.items() if k != "sort"}
        if "sort" in self.old.extra:
            extra["sort"] = self.old.extra["sort"]  # the names are kept, so is their origin
        extra["recropped_from"] = str(self.path)
        return replace(self.old, source=str(source), crop=self.crop, frames=[], extra=extra)

    def faces(self, index: int) -> tuple[Any, ...]:
        return self.frames[index].faces

    def move_masks(self, index: int, records: list[Any], folder: Path) -> None:
        """Write each painted mask of this frame's faces, warped into the new crop."""
        from faceswap.faces.align import invert_affine
        from faceswap.io.images import read_image, write_image
        from faceswap.train.dataset import MASKS_DIR

        for face in records:
            mask = self._masks.get(Path(face.crop_file).stem)
            if mask is None:
                continue
            old_to_frame = np.vstack([invert_affine(self._old_matrix[face.crop_file]), [0, 0, 1]])
            to_new = np.asarray(face.matrix, np.float64) @ old_to_frame
            image = read_image(mask)
            grey = image[..., 0] if image.ndim == 3 else image
            warped = cv2.warpAffine(grey, to_new, (self.crop.size, self.crop.size),
                                    flags=cv2.INTER_LINEAR, borderValue=0)  # fmt: skip
            write_image(folder / MASKS_DIR / f"{Path(face.crop_file).stem}.png", warped)


#: Colours of :func:`draw_alignments` (RGB): box, landmarks, crop outline.
DEBUG_BOX, DEBUG_LANDMARKS, DEBUG_CROP = (255, 64, 64), (0, 255, 0), (64, 160, 255)


def draw_alignments(image: np.ndarray, faces: Any, crop_size: int) -> np.ndarray:
    """A copy of an RGB frame with each face's detector box, its 68 landmarks (dots, the
    jaw, brows, nose, eyes and lips joined) and the outline of its crop drawn, for review.
    A frame without a face comes back unmarked but for a note in its corner."""
    from faceswap.faces.align import invert_affine
    from faceswap.io.images import as_8bit

    out = np.ascontiguousarray(as_8bit(image)).copy()
    thick = max(1, round(out.shape[0] / 360))
    if not faces:
        cv2.putText(out, "no face", (8, 24 * thick), cv2.FONT_HERSHEY_SIMPLEX, 0.7 * thick,
                    DEBUG_BOX, thick, cv2.LINE_AA)  # fmt: skip
        return out
    corners = np.array([[0, 0], [crop_size, 0], [crop_size, crop_size], [0, crop_size]], float)
    for face in faces:
        x0, y0, x1, y1 = (round(float(v)) for v in np.asarray(face.box).reshape(4))
        cv2.rectangle(out, (x0, y0), (x1, y1), DEBUG_BOX, thick, cv2.LINE_AA)
        back = invert_affine(face.matrix)
        outline = corners @ back[:, :2].T + back[:, 2]
        cv2.polylines(out, [np.rint(outline).astype(np.int32)], True, DEBUG_CROP, thick,
                      cv2.LINE_AA)  # fmt: skip
        points = np.rint(np.asarray(face.landmarks, np.float64)).astype(np.int32)
        for lo, hi, closed in _LANDMARK_LINES:
            cv2.polylines(out, [points[lo:hi]], closed, DEBUG_LANDMARKS, 1, cv2.LINE_AA)
        for x, y in points:
            cv2.circle(out, (int(x), int(y)), thick, DEBUG_LANDMARKS, -1, cv2.LINE_AA)
    return out


# iBUG 68-point groups joined by lines: jaw, brows, nose bridge, nostrils, eyes, lips.
_LANDMARK_LINES = (
    (0, 17, False), (17, 22, False), (22, 27, False), (27, 31, False), (31, 36, False),
    (36, 42, True), (42, 48, True), (48, 60, True), (60, 68, True),
)  # fmt: skip


def _write_crop(path: Path, rgb: np.ndarray, params: list[int]) -> None:
    ok, data = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise FaceswapError(f"{path}: could not encode the crop as PNG")
    try:
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            fh.write(data.tobytes())
    except OSError as exc:
        raise FaceswapError(
            f"{path}: cannot write ({os.strerror(exc.errno or 0)}); free disk space or choose "
            "another output folder"
        ) from None


class _CropWriter:
    """Encodes and writes crops on one background thread, at most ``depth`` queued."""

    def __init__(self, params: list[int], depth: int = 16) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="crops")
        self._pending: list[Any] = []
        self._params = params
        self._depth = depth

    def put(self, path: Path, rgb: np.ndarray) -> None:
        self._pending.append(self._pool.submit(_write_crop, path, rgb, self._params))
        if len(self._pending) > self._depth:
            self._pending.pop(0).result()  # re-raises a failed write here

    def put_image(self, path: Path, rgb: np.ndarray) -> None:
        """Write any image (the suffix picks the format) on the same thread."""
        from faceswap.io.images import write_image

        self._pending.append(self._pool.submit(write_image, path, rgb))
        if len(self._pending) > self._depth:
            self._pending.pop(0).result()

    def drain(self) -> None:
        while self._pending:
            self._pending.pop(0).result()

    def close(self) -> None:
        self._pool.shutdown(wait=True)


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(cfg: ExtractConfig, total: int, name: str) -> Any:
    if not cfg.progress:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, desc=name, unit="frame", leave=False, dynamic_ncols=True)

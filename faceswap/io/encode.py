"""The encode-frames stage: a folder of frames back into a video, with a source's audio.

The way back from an image sequence (``faceswap extract-frames``, a converted image folder,
frames retouched in a compositing package): the frames are encoded in natural order at the
rate of ``like`` (the original video), whose audio streams, timecode and pixel aspect come
along in sync, or at ``fps``. Frames that ``faceswap convert`` wrote keep their provenance:
the video is tagged synthetic and gets a manifest, like a converted video.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from faceswap.errors import FaceswapError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EncodeFramesConfig:
    """Options of ``faceswap encode-frames``.

    Attributes:
        input: folder of frames (any image format ``open_source`` reads), in natural order.
        output: video file to write; the suffix picks the container.
        like: the original video: its frame rate, audio, timecode, pixel aspect ratio and
            (HDR) colour tags.
        fps: frame rate when there is no ``like`` (``"30000/1001"``, ``25``).
        codec, crf, preset, pix_fmt: encoder settings, as for ``faceswap convert``.
        progress: show a progress bar.
    """

    input: Path
    output: Path
    like: Path | None = None
    fps: Fraction | str | int | None = None
    codec: str = "libx264"
    crf: int = 18
    preset: str = "medium"
    pix_fmt: str = "auto"
    progress: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "input", Path(self.input))
        object.__setattr__(self, "output", Path(self.output))
        if self.like is not None:
            object.__setattr__(self, "like", Path(self.like))
        if self.fps is not None:
            try:
                fps = Fraction(str(self.fps))
            except (ValueError, ZeroDivisionError):
                fps = Fraction(0)
            if fps <= 0:
                raise FaceswapError(
                    f"--fps {self.fps}: not a frame rate; write it as 25 or 30000/1001"
                )
            object.__setattr__(self, "fps", fps)
        if (self.like is None) == (self.fps is None):
            raise FaceswapError(
                "give the original video with --like (its rate, audio and timecode come "
                "along) or a rate with --fps, not both or neither"
            )


@dataclass(frozen=True)
class EncodeFramesResult:
    """What an encode-frames run wrote.

    Attributes:
        output: the video.
        frames: frames encoded.
        fps: their rate.
        seconds: wall time.
        manifest: the provenance manifest, when the frames came from ``faceswap convert``.
    """

    output: Path
    frames: int
    fps: Fraction
    seconds: float
    manifest: Path | None = None


def run_encode_frames(cfg: EncodeFramesConfig) -> EncodeFramesResult:
    """Encode the frames of ``cfg.input`` into ``cfg.output``.

    Raises:
        FaceswapError: no such folder or no frames, frames of different sizes, an unreadable
            ``like`` video, an output that cannot be written; nothing is left half-written.
    """
    from tqdm import tqdm

    from faceswap.io.video import VideoWriter, auto_encoder, open_source, probe
    from faceswap.provenance import provenance_tags, read_manifest, write_manifest

    started = time.perf_counter()
    folder = cfg.input
    if not folder.is_dir():
        raise FaceswapError(f"{folder}: no such folder of frames; check the path")
    source = open_source(folder, deep=True)  # 16-bit frames make a 10-bit video
    if source.is_video:
        raise FaceswapError(f"{folder}: a video, not a folder of frames; nothing to encode")
    if cfg.output.resolve().parent == folder.resolve():
        raise FaceswapError(f"{cfg.output}: write the video outside the folder of frames")
    fps = cfg.fps
    if cfg.like is not None:
        if not cfg.like.is_file():
            raise FaceswapError(f"--like {cfg.like}: no such video; pass the original video")
        original = probe(cfg.like)
        fps = original.fps
        if original.frame_count != source.frame_count:
            log.warning(
                "%s has %d frames, %s %d: the video will be %.2f s long, its audio %.2f s",
                folder,
                source.frame_count,
                cfg.like.name,
                original.frame_count,
                source.frame_count / float(fps),
                original.duration,
            )
    assert isinstance(fps, Fraction)
    colour = original.output_colour if cfg.like is not None else None
    hdr = bool(colour and colour.hdr)
    manifest = read_manifest(folder)
    synthetic = bool(manifest and manifest.get("synthetic"))
    model = (manifest or {}).get("model") or {}
    metadata = (
        provenance_tags(str(model.get("sha256", "")), preset=model.get("preset"))
        if synthetic
        else None
    )
    if metadata is None:
        # Frames without their folder's manifest (copied elsewhere, a preview timelapse)
        # still carry their own tags: the video is marked with those.
        own = _frame_tags(source)
        if own.get("synthetic") == "1":
            metadata = own
            log.info("%s: frames marked synthetic; the video is tagged so too", folder)
    writer = VideoWriter(
        cfg.output,
        source.width,
        source.height,
        fps,
        codec=auto_encoder(hdr) if cfg.codec == "auto" else cfg.codec,
        crf=cfg.crf,
        preset=cfg.preset,
        pix_fmt=cfg.pix_fmt,
        audio_from=cfg.like,
        metadata=metadata,
        deep=source.deep,
    )
    progress = tqdm(total=source.frame_count, unit="frame", desc=f"encode {folder.name}",
                    leave=False, disable=not cfg.progress)  # fmt: skip
    try:
        with writer:
            for frame in source.iter_frames():
                if frame.image.shape[:2] != (source.height, source.width):
                    h, w = frame.image.shape[:2]
                    raise FaceswapError(
                        f"{folder}: frame {frame.name} is {w}x{h}, the first is "
                        f"{source.width}x{source.height}; a video needs one frame size"
                    )
                writer.write(frame.image)
                progress.update(1)
    finally:
        progress.close()
    written = None
    if synthetic and manifest is not None:
        written = write_manifest(
            cfg.output,
            model_sha256=str(model.get("sha256", "")),
            preset=model.get("preset"),
            input_path=folder,
            settings={
                "encoded_from": folder.name,
                "like": cfg.like.name if cfg.like else None,
                "fps": str(fps),
                "codec": cfg.codec,
                "crf": cfg.crf,
                "convert": manifest.get("settings", {}),
            },
            frames_total=writer.frames_written,
            frames_swapped=int((manifest.get("frames") or {}).get("swapped", 0)),
            faces_swapped=int(manifest.get("faces_swapped", 0)),
        )
    return EncodeFramesResult(
        output=cfg.output,
        frames=writer.frames_written,
        fps=fps,
        seconds=time.perf_counter() - started,
        manifest=written,
    )


def _frame_tags(source: Any) -> dict[str, str]:
    """The provenance tags the first frame of an image folder carries ({} for none)."""
    from faceswap.provenance import read_provenance

    files = getattr(source, "files", None) or []
    if not files:
        return {}
    try:
        return read_provenance(files[0])
    except FaceswapError:
        return {}

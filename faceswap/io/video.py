"""Video probe, streamed frame reading and writing with audio, all through the ffmpeg binary.

- :func:`probe` describes a video without ffprobe: it parses ``ffmpeg -i`` (streams, codec,
  size, rotation, audio) and lists the packets of the video stream with a stream-copy
  ``framecrc`` pass (no decoding) for an exact frame count, rational frame rate and per-frame
  timestamps.
- :func:`open_source` streams frames of a video (raw RGB through a pipe, display rotation
  applied, every decoded frame exactly once) or of an image folder, as :class:`Frame` objects.
  Decode-only throughput: ``for _ in open_source(path).iter_frames(): pass``.
- :class:`VideoWriter` pipes RGB frames into an encoder and muxes the audio of the source
  video in sync, writing to a temporary file that is renamed only on success.

All argument lists come from :mod:`faceswap.io.ffmpeg_args`.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import itertools
import logging
import re
import subprocess
import threading
import types
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from faceswap.errors import FaceswapError
from faceswap.io import ffmpeg_args
from faceswap.io.ffmpeg_bin import find_ffmpeg, version_of
from faceswap.io.files import atomic_path
from faceswap.io.images import is_image_file, list_images, natural_key, read_image

log = logging.getLogger(__name__)

VIDEO_EXTENSIONS: frozenset[str] = frozenset(
    {
        *(".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".wmv", ".flv", ".mpg", ".mpeg"),
        *(".ts", ".mts", ".m2ts", ".3gp", ".ogv", ".mxf", ".dv", ".y4m", ".gif"),
    }
)
# Skips shorter than this decode and drop frames instead of seeking.
SEEK_MIN_SECONDS = 1.0
# ffmpeg demuxers of single still images: a path that opens with one of these is not a video.
_IMAGE_DEMUXERS = ("_pipe", "image2")

_CHANNELS = {"mono": 1, "stereo": 2, "2.1": 3, "3.0": 3, "quad": 4, "4.0": 4, "5.0": 5}
_CHANNELS |= {"5.1": 6, "6.1": 7, "7.1": 8, "downmix": 2}


@dataclass(frozen=True)
class AudioStream:
    """One audio stream of a file.

    Attributes:
        index: Position among the file's audio streams (``0:a:index`` in ffmpeg).
        codec: ffmpeg codec name (``aac``, ``opus``, ``pcm_s16le``...).
        sample_rate: Hz.
        channels: Channel count.
        start_time: Seconds on the file's clock (compare with ``VideoInfo.start_time``).
    """

    index: int
    codec: str
    sample_rate: int
    channels: int
    start_time: float


@dataclass(frozen=True)
class VideoInfo:
    """What :func:`probe` found.

    Attributes:
        path: The file.
        width, height: Displayed frame size in pixels (after rotation), the size of frames
            :func:`open_source` yields.
        rotation: Display rotation in counter-clockwise degrees (0, 90, 180, 270) as stored in
            the display matrix; frames are read already rotated.
        fps: Exact frame rate (``Fraction(30000, 1001)``).
        frame_count: Number of video frames (packets of the video stream).
        duration: Seconds of video: ``frame_count / fps`` for constant-rate video.
        start_time: Seconds on the file's clock of the first video frame.
        codec, pix_fmt: Video codec and pixel format names.
        audio: The audio streams.
        subtitles: Codec names of the subtitle streams (``subrip``, ``mov_text``...).
        metadata: Global container tags.
        container_start: The file's start (earliest stream), seconds.
        frame_times: Presentation time of each frame in seconds from the first frame.
        video_stream: Index of the video stream used among the file's video streams.
        variable_rate: The frames are not evenly spaced (phone footage); ``fps`` is then the
            average rate and ``frame_times`` the real presentation times.
        color_matrix: The YUV matrix the file is tagged with (``bt709``, ``smpte170m``...),
            or ``""`` when untagged.
        color_primaries, color_transfer: Its primaries and transfer tags, ``""`` when
            untagged or printed as one name with the matrix (SDR: ``bt709``).
        timecode: SMPTE start timecode (``01:00:00:00``; ``;`` for drop-frame) or ``""``.
        sar: Sample (pixel) aspect ratio of the coded frames; 1 for square pixels. Frames
            are read as stored (not stretched), so anamorphic video looks squeezed in RGB.
        hdr: PQ or HLG transfer (HDR10, HLG). Frames are read as 8-bit RGB code values
            without tone mapping, so they look flat; written back with :attr:`output_colour`
            they are HDR again.
    """

    path: Path
    width: int
    height: int
    rotation: int
    fps: Fraction
    frame_count: int
    duration: float
    start_time: float
    codec: str
    pix_fmt: str
    audio: tuple[AudioStream, ...] = ()
    subtitles: tuple[str, ...] = ()
    metadata: Mapping[str, str] = field(default_factory=dict)
    container_start: float = 0.0
    frame_times: tuple[float, ...] = field(default=(), repr=False, compare=False)
    video_stream: int = 0
    variable_rate: bool = False
    color_matrix: str = ""
    color_primaries: str = ""
    color_transfer: str = ""
    timecode: str = ""
    sar: Fraction = Fraction(1)
    hdr: bool = False

    @property
    def has_audio(self) -> bool:
        return bool(self.audio)

    @property
    def bit_depth(self) -> int:
        """Bits per component of the coded frames (10 for ``yuv420p10le``; 8 when unknown)."""
        return ffmpeg_args.pix_fmt_bits(self.pix_fmt)

    @property
    def decode_matrix(self) -> str | None:
        """The YUV matrix to force when decoding, or None to let ffmpeg follow the tags.

        Untagged video is BT.709 to players when it is HD (wider than 1024 or taller than
        576 coded pixels, mpv's rule) and BT.601 otherwise; ffmpeg alone assumes BT.601.
        """
        if self.color_matrix or not self.pix_fmt.startswith(("yuv", "nv", "p0")):
            return None
        coded_w, coded_h = (
            (self.height, self.width) if self.rotation in (90, 270) else (self.width, self.height)
        )
        return "bt709" if coded_w > 1024 or coded_h > 576 else None

    @property
    def output_colour(self) -> ffmpeg_args.ColourTags | None:
        """The colour tags to write frames of this video with: its own for HDR and other
        BT.2020 video (the frames are its code values, which BT.709 tags would show
        desaturated; BT.2020 defaults fill what is untagged), None for the rest, written
        as BT.709 (an SD BT.601 source is converted to the BT.709 matrix and tagged so)."""
        if not (self.hdr or self.color_primaries == "bt2020"):
            return None
        return ffmpeg_args.ColourTags(
            matrix=self.color_matrix or "bt2020nc",
            primaries=self.color_primaries or "bt2020",
            transfer=self.color_transfer or "bt2020-10",
        )

    @property
    def audio_offset(self) -> float | None:
        """Seconds the first audio stream starts after the video (negative: before)."""
        return self.audio[0].start_time - self.start_time if self.audio else None


@dataclass(frozen=True)
class Frame:
    """One frame of a source.

    Attributes:
        index: Frame number in the source (0-based), counting every frame even when some
            are skipped with ``every_nth``/``start``.
        timestamp: Seconds from the first frame of the video; for image folders, which have
            no clock, the index.
        image: RGB uint8 HxWx3 (writable, owned by this frame); uint16 (0-65535) from a
            :attr:`FrameSource.deep` source.
        name: Stem for files made from this frame (``frame_000012`` or the image's stem).
    """

    index: int
    timestamp: float
    image: np.ndarray
    name: str


# --------------------------------------------------------------------------- ffmpeg running


def ffmpeg_version(ffmpeg: str | None = None) -> tuple[int, int]:
    """``(major, minor)`` of the ffmpeg in use; git builds (``N-12345-g...``) count as new."""
    return version_of(ffmpeg or find_ffmpeg())


@functools.cache
def muxer_options(muxer: str) -> str:
    """The help text of an ffmpeg muxer (``ffmpeg -h muxer=NAME``), to test for options."""
    args = ffmpeg_args.muxer_help_args(find_ffmpeg(), muxer)
    return subprocess.run(args, capture_output=True, text=True, check=False).stdout


def _major() -> int:
    return ffmpeg_version(find_ffmpeg())[0]


class StderrDrain:
    """Read a process's stderr in a thread (a full pipe would stall ffmpeg), keep the tail."""

    def __init__(self, proc: subprocess.Popen[bytes], keep: int = 40) -> None:
        self._lines: collections.deque[str] = collections.deque(maxlen=keep)
        self._thread = threading.Thread(target=self._run, args=(proc,), daemon=True)
        self._thread.start()

    def _run(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stderr is not None
        for raw in proc.stderr:
            line = raw.decode("utf-8", "replace").strip()
            if line:
                self._lines.append(line)

    def tail(self, n: int = 3) -> str:
        """The last ``n`` lines, without ffmpeg's ``[component @ 0x...]`` prefixes."""
        self._thread.join(timeout=2)
        text = " | ".join(list(self._lines)[-n:])
        return re.sub(r"\[[^\]]*@ 0x[0-9a-f]+\] ", "", text)


@functools.cache
def available_encoders() -> frozenset[str]:
    """Names of the video and audio encoders compiled into the ffmpeg in use.

    Being listed does not prove the hardware is there (``h264_nvenc`` is in most static
    builds); :func:`encoder_works` tries it.
    """
    out = subprocess.run(
        ffmpeg_args.encoders_args(find_ffmpeg()), capture_output=True, text=True, check=False
    ).stdout
    names = set()
    started = False
    for line in out.splitlines():
        if line.strip().startswith("------"):
            started = True
            continue
        parts = line.split()
        if started and len(parts) >= 2 and len(parts[0]) == 6:
            names.add(parts[1])
    return frozenset(names)


@functools.cache
def encoder_works(codec: str) -> bool:
    """Whether ``codec`` can encode a tiny clip here (hardware encoders need their device)."""
    if codec not in available_encoders():
        return False
    args = ffmpeg_args.encoder_test_args(find_ffmpeg(), codec)
    try:
        proc = subprocess.run(args, capture_output=True, check=False, timeout=30)
    except subprocess.TimeoutExpired:
        return False
    return proc.returncode == 0


#: What ``--codec auto`` tries, in order: hardware H.264, or for HDR hardware HEVC (10-bit).
AUTO_H264 = ("h264_nvenc", "h264_qsv", "h264_videotoolbox")
AUTO_HEVC = ("hevc_nvenc", "hevc_qsv", "hevc_videotoolbox")


def pick_encoder(preferred: tuple[str, ...] = AUTO_H264, fallback: str = "libx264") -> str:
    """The first of ``preferred`` that works on this machine, else ``fallback``."""
    for codec in preferred:
        if encoder_works(codec):
            return codec
    return fallback


def auto_encoder(hdr: bool = False) -> str:
    """``--codec auto``: the first hardware H.264 encoder that works, else libx264; for HDR
    the first hardware HEVC one (10-bit HDR plays back as HEVC Main 10), else libx265."""
    return pick_encoder(AUTO_HEVC, "libx265") if hdr else pick_encoder(AUTO_H264, "libx264")


def check_encoder(codec: str) -> None:
    """Raise a :class:`FaceswapError` naming usable alternatives if ``codec`` is not built in."""
    encoders = available_encoders()
    if codec in encoders:
        return
    families = ("264", "265", "hevc", "vp9", "av1", "prores")
    options = sorted(e for e in encoders if any(f in e for f in families))
    raise FaceswapError(
        f"video encoder '{codec}' is not available in this ffmpeg ({find_ffmpeg()}); "
        f"choose from {', '.join(options) or 'libx264'} or install an ffmpeg built with it"
    )


# --------------------------------------------------------------------------------- probing

_DURATION = re.compile(r"Duration: (N/A|(\d+):(\d+):(\d+(?:\.\d+)?))(?:, start: (-?[\d.]+))?")
_STREAM = re.compile(
    r"^\s*Stream #\d+:(\d+)(?:\[[^\]]*\])?(?:\([^)]*\))?: (Video|Audio|Subtitle): (.*)$"
)
_SIZE = re.compile(r"\b(\d{1,5})x(\d{1,5})\b")
_ROTATION = re.compile(r"rotation of (-?[\d.]+) degrees", re.IGNORECASE)
_STREAM_START = re.compile(r", start (-?[\d.]+)")
_TIMECODE = re.compile(r"^\s+timecode\s*:\s*(\d\d:\d\d:\d\d[:;.]\d\d)\s*$", re.IGNORECASE)
_RATE = re.compile(r"([\d.]+)(k?) (fps|tbr)")


def _split_top(text: str) -> list[str]:
    """Split on commas that are not inside parentheses."""
    parts, depth, cur = [], 0, []
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur).strip())
    return parts


_MATRICES = ("bt709", "bt470bg", "smpte170m", "bt2020nc", "bt2020c", "smpte240m", "fcc")


def _color_tags(pix_desc: str) -> tuple[str, str, str]:
    """``(matrix, primaries, transfer)`` from ``yuv420p10le(tv, bt2020nc/bt2020/arib-std-b67,
    progressive)`` (ffmpeg prints one name when all three agree: ``yuv420p(tv, bt709)``);
    ``""`` for what is untagged."""
    if "(" not in pix_desc:
        return "", "", ""
    for token in pix_desc.split("(", 1)[1].rstrip(")").split(","):
        names = token.strip().split("/")
        if names[0] in _MATRICES:
            if len(names) == 3:
                return tuple("" if n == "unknown" else n for n in names)  # type: ignore[return-value]
            return names[0], "", ""
    return "", "", ""


def _sar(desc: str) -> Fraction:
    """Sample aspect ratio from ``[SAR 4:3 DAR 16:9]``; square pixels when absent or 0:1."""
    match = re.search(r"SAR (\d+):(\d+)", desc)
    if not match or int(match.group(1)) == 0 or int(match.group(2)) == 0:
        return Fraction(1)
    return Fraction(int(match.group(1)), int(match.group(2)))


def _rate_to_fraction(value: float) -> Fraction:
    """A printed rate (``29.97``) as the NTSC-style rational it stands for, when it is one."""
    for base in (24, 30, 48, 60, 120, 240):
        ntsc = Fraction(base * 1000, 1001)
        if abs(float(ntsc) - value) < 0.006:
            return ntsc
    return Fraction(value).limit_denominator(1001)


@dataclass
class _Parsed:
    demuxer: str = ""
    duration: float | None = None
    container_start: float = 0.0
    metadata: dict[str, str] = field(default_factory=dict)
    video: list[dict[str, object]] = field(default_factory=list)
    audio: list[dict[str, object]] = field(default_factory=list)
    subtitles: list[str] = field(default_factory=list)
    any_stream_start: bool = False
    timecode: str = ""


def parse_probe_output(text: str) -> _Parsed:
    """Parse the stderr of ``ffmpeg -i`` (first input only). Pure; exposed for tests."""
    parsed = _Parsed()
    section: str | None = None  # "global", "video", "audio" or None: which block we are in
    current: dict[str, object] | None = None
    for line in text.splitlines():
        if line.startswith("Input #"):
            if parsed.demuxer:
                break  # a second input
            parsed.demuxer = line.split(",")[1].strip() if "," in line else ""
            section = "global"
            continue
        if not parsed.demuxer:
            continue
        if line.startswith(("Output #", "Stream mapping")) or not line.startswith(" "):
            if line.startswith(("Output #", "Stream mapping")):
                break
            continue
        match = _DURATION.search(line)
        if match and line.startswith("  Duration"):
            section = None
            if match.group(1) != "N/A":
                h, m, s = int(match.group(2)), int(match.group(3)), float(match.group(4))
                parsed.duration = h * 3600 + m * 60 + s
            if match.group(5):
                parsed.container_start = float(match.group(5))
            continue
        match = _STREAM.match(line)
        if match:
            kind, desc = match.group(2), match.group(3)
            start = _STREAM_START.search(desc)
            if start:
                parsed.any_stream_start = True
            parts = _split_top(desc)
            codec = parts[0].split()[0] if parts and parts[0] else "unknown"
            if kind == "Video":
                size = _SIZE.search(desc)
                rates = {unit: float(v) * (1000 if k else 1) for v, k, unit in _RATE.findall(desc)}
                current = {
                    "codec": codec,
                    "pix_fmt": parts[1].split("(")[0].strip() if len(parts) > 1 else "",
                    "tags": _color_tags(parts[1]) if len(parts) > 1 else ("", "", ""),
                    "hdr": next((t for t in ffmpeg_args.HDR_TRANSFERS if t in desc), ""),
                    "width": int(size.group(1)) if size else 0,
                    "height": int(size.group(2)) if size else 0,
                    "rate": rates.get("fps") or rates.get("tbr"),
                    "start": float(start.group(1)) if start else None,
                    "rotation": 0.0,
                    "attached_pic": "attached pic" in desc,
                    "sar": _sar(desc),
                }
                parsed.video.append(current)
                section = "video"
            elif kind == "Subtitle":
                parsed.subtitles.append(codec)
                section, current = "other", None
            else:
                rate = re.search(r"(\d+) Hz", desc)
                layout = parts[2].split("(")[0].strip() if len(parts) > 2 else ""
                channels_match = re.match(r"(\d+) channels", layout)
                channels = (
                    int(channels_match.group(1))
                    if channels_match
                    else _CHANNELS.get(layout, 2 if layout else 0)
                )
                current = {
                    "codec": codec,
                    "sample_rate": int(rate.group(1)) if rate else 0,
                    "channels": channels,
                    "start": float(start.group(1)) if start else None,
                }
                parsed.audio.append(current)
                section = "audio"
            continue
        if line.lstrip().startswith("Stream #"):
            section = "other"
            current = None
            continue
        timecode = _TIMECODE.match(line)
        if timecode and not parsed.timecode:
            parsed.timecode = timecode.group(1)
        rotation = _ROTATION.search(line)
        if rotation and section == "video" and current is not None:
            current["rotation"] = float(rotation.group(1))
            continue
        if section == "global" and line.startswith("    ") and ":" in line:
            key, _, value = line.strip().partition(":")
            if key.strip() and key.strip() != "Metadata":
                parsed.metadata[key.strip()] = value.strip()
    return parsed


_DISCARD = 0x4  # AV_PKT_FLAG_DISCARD
_NOPTS = -(2**63)  # AV_NOPTS_VALUE as framecrc prints it


def _int_or_none(text: str) -> int | None:
    try:
        value = int(text)
    except ValueError:
        return None
    return None if value == _NOPTS else value


def parse_framecrc(text: str) -> tuple[Fraction, list[int], list[int]]:
    """Time base, pts and durations of the shown packets in a ``framecrc`` listing (stream 0).

    Packets flagged discard (``F=0x4`` set: before an mp4/mov edit list's start) are left out:
    the decoder drops them, so counting them would break the frame count.
    """
    time_base = Fraction(1, 1)
    pts: list[int] = []
    durations: list[int] = []
    for line in text.splitlines():
        if line.startswith("#tb 0:"):
            time_base = Fraction(line.split(":", 1)[1].strip())
        elif line and not line.startswith("#"):
            fields = [f.strip() for f in line.split(",")]
            flags = next((f[2:] for f in fields[6:] if f.startswith("F=")), "0x1")
            if int(flags, 16) & _DISCARD:
                # Outside the edit list (a stream-copy trim): demuxed, never shown.
                continue
            if len(fields) >= 4 and fields[0] == "0":
                # AVI (and raw streams) carry no pts, only decode order: use the dts.
                value = _int_or_none(fields[2])
                pts.append(value if value is not None else _int_or_none(fields[1]) or 0)
                durations.append(int(fields[3]) if fields[3].lstrip("-").isdigit() else 0)
    return time_base, pts, durations


def _rate_from_packets(
    time_base: Fraction, pts: list[int], durations: list[int], printed: float | None
) -> tuple[Fraction | None, bool]:
    """Exact frame rate from the packet listing.

    Candidates: the most common packet duration (exact in mp4/mov, whose time bases are
    fine), the rate ffmpeg prints snapped to its rational (``29.97`` -> ``30000/1001``), and
    the most common pts step. The first whose frame times ``i / fps`` land on the actual pts
    (within the rounding of a coarse time base such as Matroska's milliseconds) wins; a
    variable-rate file gets the average rate. Returns ``(fps, variable)``.
    """
    ordered = sorted(pts)
    candidates: list[Fraction] = []
    positive = [d for d in durations if d > 0]
    if positive:
        candidates.append(1 / (collections.Counter(positive).most_common(1)[0][0] * time_base))
    if printed:
        candidates.append(_rate_to_fraction(printed))
    steps = [b - a for a, b in itertools.pairwise(ordered) if b > a]
    if steps:
        candidates.append(1 / (collections.Counter(steps).most_common(1)[0][0] * time_base))
    if len(ordered) < 2:
        return (candidates[0] if candidates else None), False
    first = ordered[0]
    actual = (np.asarray(ordered, np.float64) - first) * float(time_base)
    index = np.arange(len(ordered), dtype=np.float64)
    tolerance = 1.01 * float(time_base)  # timestamps are rounded to the time base
    for fps in candidates:
        if np.abs(actual - index / float(fps)).max() <= tolerance:
            return fps, False
    # Mostly regular with a few gaps (a camera that dropped frames): keep the nominal rate.
    step_seconds = np.diff(actual)
    for fps in candidates:
        regular = np.abs(step_seconds - 1 / float(fps)) <= tolerance
        if regular.mean() >= 0.95:
            return fps, True
    span = (ordered[-1] - first) * time_base
    if span <= 0:
        return (candidates[0] if candidates else None), False
    average = (len(ordered) - 1) / span
    log.info("variable frame rate: using the average %.3f fps", float(average))
    return average.limit_denominator(1001), True


def _not_a_video(path: Path, reason: str) -> FaceswapError:
    return FaceswapError(
        f"{path}: not a readable video ({reason}); check the file plays, or re-encode it "
        "with `ffmpeg -i IN -c:v libx264 -c:a aac OUT.mp4`"
    )


def probe(path: Path | str) -> VideoInfo:
    """Describe a video file without ffprobe.

    Results are cached per file version (path, size, modification time), so reading a
    video and then copying its audio probes it once.

    Raises:
        FaceswapError: the file is missing, not a video, has no video stream or no frames.
    """
    path = Path(path)
    if not path.exists():
        raise FaceswapError(f"{path}: no such file; check the path")
    if path.is_dir():
        raise FaceswapError(f"{path}: is a folder, not a video; use open_source for folders")
    stat = path.stat()
    if stat.st_size == 0:
        raise _not_a_video(path, "empty file")
    return _probe_cached(path, stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _probe_cached(path: Path, size: int, mtime_ns: int) -> VideoInfo:
    ffmpeg = find_ffmpeg()
    proc = subprocess.run(ffmpeg_args.probe_args(ffmpeg, path), capture_output=True, check=False)
    text = proc.stderr.decode("utf-8", "replace")
    parsed = parse_probe_output(text)
    if not parsed.demuxer:
        last = [ln for ln in text.splitlines() if ln.strip()]
        reason = last[-1].split("] ")[-1] if last else "ffmpeg could not open it"
        raise _not_a_video(path, reason.strip().rstrip("."))
    videos = [v for v in parsed.video if not v["attached_pic"]]
    if not videos or any(parsed.demuxer.endswith(s) for s in _IMAGE_DEMUXERS):
        raise FaceswapError(
            f"{path}: has no video stream ({parsed.demuxer}); pass a video, or a folder of images"
        )
    video = videos[0]
    stream_index = parsed.video.index(video)

    crc = subprocess.run(
        ffmpeg_args.count_packets_args(ffmpeg, path, f"v:{stream_index}"),
        capture_output=True,
        check=False,
    )
    time_base, pts, durations = parse_framecrc(crc.stdout.decode("utf-8", "replace"))
    if not pts:
        reason = crc.stderr.decode("utf-8", "replace").strip().splitlines()
        raise _not_a_video(path, reason[-1] if reason else "no video frames")
    printed_rate = video["rate"] if isinstance(video["rate"], float) else None
    fps, variable = _rate_from_packets(time_base, pts, durations, printed_rate)
    if fps is None or fps <= 0:
        raise _not_a_video(path, "no frame rate")
    # Discarded packets are already gone, so every pts left is a frame that is shown.
    first = min(pts)
    video_start = float(first * time_base)
    if isinstance(video["start"], float):
        video_start = float(video["start"])
    frame_times = tuple(float((p - first) * time_base) for p in sorted(pts))
    if len(set(frame_times)) != len(frame_times):
        frame_times = tuple(float(i / fps) for i in range(len(pts)))

    audio = []
    for i, stream in enumerate(parsed.audio):
        start = stream["start"]
        if start is None:
            start = (
                _first_packet_time(ffmpeg, path, f"a:{i}")
                if not parsed.any_stream_start and _major() < 9
                else 0.0
            )
        audio.append(
            AudioStream(
                index=i,
                codec=str(stream["codec"]),
                sample_rate=int(stream["sample_rate"]),  # type: ignore[call-overload]
                channels=int(stream["channels"]),  # type: ignore[call-overload]
                start_time=float(start),  # type: ignore[arg-type]
            )
        )

    rotation = round(float(video["rotation"])) % 360  # type: ignore[arg-type]
    width, height = int(video["width"]), int(video["height"])  # type: ignore[call-overload]
    if rotation in (90, 270):
        width, height = height, width
    frame_count = len(pts)
    return VideoInfo(
        path=path,
        width=width,
        height=height,
        rotation=rotation,
        fps=fps,
        frame_count=frame_count,
        duration=float(frame_count / fps),
        start_time=video_start,
        codec=str(video["codec"]),
        pix_fmt=str(video["pix_fmt"]),
        audio=tuple(audio),
        subtitles=tuple(parsed.subtitles),
        metadata=types.MappingProxyType(dict(parsed.metadata)),  # read-only: results are cached
        container_start=parsed.container_start,
        frame_times=frame_times,
        video_stream=stream_index,
        variable_rate=variable,
        color_matrix=video["tags"][0],  # type: ignore[index]
        color_primaries=video["tags"][1],  # type: ignore[index]
        # A transfer named outside the three-name tag still counts (HDR detection is loose).
        color_transfer=video["tags"][2] or video["hdr"],  # type: ignore[index]
        timecode=parsed.timecode,
        sar=video["sar"] if isinstance(video["sar"], Fraction) else Fraction(1),
        hdr=bool(video["hdr"]),
    )


def _first_packet_time(ffmpeg: str, path: Path, stream: str) -> float:
    """Start of a stream for ffmpeg builds that do not print per-stream starts."""
    args = ffmpeg_args.count_packets_args(ffmpeg, path, stream, max_packets=8)
    out = subprocess.run(args, capture_output=True, check=False).stdout.decode("utf-8", "replace")
    time_base, pts, _ = parse_framecrc(out)
    return float(min(pts) * time_base) if pts else 0.0


# ------------------------------------------------------------------------------- reading


class FrameSource(ABC):
    """Frames of a video or an image folder, streamed in order.

    Attributes:
        path: The video file or image folder.
        is_video: True for a video file.
        frame_count: Number of frames.
        fps: Exact frame rate, or None for images.
        width, height: Frame size in pixels (of the first image for folders).
        info: The :class:`VideoInfo`, or None for images.
        deep: Frames of more than 8 bits a component come as uint16 (0-65535) rather than
            uint8: a video of over 8 bits (a 10-bit HDR or ProRes source) when opened with
            ``deep``, or 16-bit images of a folder opened so.
    """

    path: Path
    is_video: bool
    frame_count: int
    fps: Fraction | None
    width: int
    height: int
    info: VideoInfo | None
    deep: bool = False

    @abstractmethod
    def iter_frames(self, every_nth: int = 1, start: int = 0) -> Iterator[Frame]:
        """Frames ``start, start + every_nth, ...`` in order, each read once.

        Stopping early (``break``, an exception, closing the generator) stops the decoder.
        """

    def __iter__(self) -> Iterator[Frame]:
        return self.iter_frames()

    def __len__(self) -> int:
        return self.frame_count

    def iter_spread(self, limit: int) -> Iterator[Frame]:
        """At most ``limit`` frames (0: all of them), spread evenly: every n-th frame."""
        every = 1 if limit <= 0 or self.frame_count <= limit else -(-self.frame_count // limit)
        return self.iter_frames(every_nth=every)

    def selected_count(self, every_nth: int = 1, start: int = 0) -> int:
        """How many frames ``iter_frames(every_nth, start)`` yields."""
        if every_nth < 1 or start < 0:
            raise FaceswapError("every_nth must be >= 1 and start >= 0")
        return max(0, -(-(self.frame_count - start) // every_nth))


def _check_selection(every_nth: int, start: int) -> None:
    if every_nth < 1:
        raise FaceswapError(f"every_nth must be 1 or more, got {every_nth}")
    if start < 0:
        raise FaceswapError(f"start must be 0 or more, got {start}")


class VideoSource(FrameSource):
    """Frames of a video file, decoded by ffmpeg into a pipe."""

    is_video = True

    def __init__(self, info: VideoInfo, *, deep: bool = False) -> None:
        self.deep = deep and info.bit_depth > 8
        if info.hdr:
            log.warning(
                "%s is HDR (%s): its frames are processed as %s code values without tone "
                "mapping (crops and previews look flat); videos written from them keep its "
                "HDR tags, in 10 bits where the encoder has them",
                info.path,
                info.color_transfer,
                "16-bit" if self.deep else "8-bit",
            )
        self.info = info
        self.path = info.path
        self.frame_count = info.frame_count
        self.fps = info.fps
        self.width = info.width
        self.height = info.height

    def seek_for(self, start: int) -> tuple[float | None, int]:
        """Where to seek to begin at frame ``start``: ``(seconds or None, first frame there)``.

        Seeking lands half a frame before frame ``start`` so ffmpeg's accurate seek keeps
        exactly that frame; short skips (under ``SEEK_MIN_SECONDS``) just decode and drop.
        """
        info = self.info
        assert info is not None
        if start < max(1, round(SEEK_MIN_SECONDS * info.fps)) or start >= len(info.frame_times):
            return None, 0
        video_offset = info.start_time - info.container_start
        position = video_offset + info.frame_times[start] - 0.5 / float(info.fps)
        return max(position, 0.0), start

    def _timestamp(self, index: int) -> float:
        info = self.info
        assert info is not None
        if index < len(info.frame_times):
            return info.frame_times[index]
        return float(index / info.fps)

    def iter_frames(self, every_nth: int = 1, start: int = 0) -> Iterator[Frame]:
        _check_selection(every_nth, start)
        if start >= self.frame_count:
            return
        seek, first = self.seek_for(start)
        args = ffmpeg_args.decode_args(
            find_ffmpeg(),
            self.path,
            every_nth=every_nth,
            start=start - first,
            version=ffmpeg_version(find_ffmpeg()),
            seek=seek,
            stream=self.info.video_stream if self.info else 0,
            in_matrix=self.info.decode_matrix if self.info else None,
            deep=self.deep,
        )
        dtype = np.dtype(np.uint16 if self.deep else np.uint8)
        size = self.width * self.height * 3 * dtype.itemsize
        proc = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        drain = StderrDrain(proc)
        assert proc.stdout is not None
        index = start
        yielded = 0
        try:
            while True:
                buf = bytearray(size)
                view = memoryview(buf)
                got = 0
                while got < size:
                    n = proc.stdout.readinto(view[got:])
                    if not n:
                        break
                    got += n
                if got < size:
                    break
                image = np.frombuffer(buf, dtype).reshape(self.height, self.width, 3)
                yield Frame(index, self._timestamp(index), image, f"frame_{index:06d}")
                yielded += 1
                index += every_nth
            code = proc.wait()
            if code != 0:
                raise FaceswapError(
                    f"{self.path}: decoding failed after {yielded} frames ({drain.tail()}); "
                    "the file may be damaged: re-encode it with ffmpeg"
                )
            expected = self.selected_count(every_nth, start)
            if yielded != expected:
                log.warning(
                    "%s: decoded %d frames where %d were expected", self.path, yielded, expected
                )
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.stdout.close()
            proc.wait()


class ImageFolderSource(FrameSource):
    """Frames from image files (a folder in natural order, or a single image)."""

    is_video = False
    fps = None
    info = None

    def __init__(self, path: Path, files: list[Path], *, deep: bool = False) -> None:
        if not files:
            raise FaceswapError(
                f"{path}: no images found ({', '.join(sorted(_IMAGE_HINT))}); "
                "put the frames in this folder or pass a video"
            )
        self.path = path
        self.files = files
        self.frame_count = len(files)
        first = read_image(files[0], keep_16bit=deep)
        self.height, self.width = first.shape[:2]
        self.deep = first.dtype == np.uint16

    def iter_frames(self, every_nth: int = 1, start: int = 0) -> Iterator[Frame]:
        _check_selection(every_nth, start)
        for index in range(start, self.frame_count, every_nth):
            file = self.files[index]
            image = read_image(file, keep_16bit=self.deep)
            yield Frame(index, float(index), image, file.stem)


_IMAGE_HINT = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".webp", ".exr"}


def _videos_in(folder: Path) -> list[Path]:
    files = [
        p
        for p in folder.iterdir()
        if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS and not p.name.startswith(".")
    ]
    return sorted(files, key=lambda p: natural_key(p.name))


def open_source(path: Path | str, *, deep: bool = False) -> FrameSource:
    """Open a video file, an image folder or a single image as a :class:`FrameSource`.

    ``deep``: keep more than 8 bits where the source has them (frames come as uint16, see
    :attr:`FrameSource.deep`); else every frame is 8-bit.

    Raises:
        FaceswapError: missing path, unreadable video, empty folder, a folder of videos.
    """
    path = Path(path)
    if path.is_dir():
        images = list_images(path)
        if not images and _videos_in(path):
            raise FaceswapError(f"{path}: holds videos, not images; pass one video file at a time")
        return ImageFolderSource(path, images, deep=deep)
    if path.is_file() and is_image_file(path):
        return ImageFolderSource(path, [path], deep=deep)
    return VideoSource(probe(path), deep=deep)


def list_inputs(path: Path | str) -> list[Path]:
    """The inputs a path stands for: ``[video]``, ``[image folder]`` or a folder's videos.

    Raises:
        FaceswapError: missing path, empty folder, or a folder mixing images and videos.
    """
    path = Path(path)
    if not path.exists():
        raise FaceswapError(f"{path}: no such file or folder; check the path")
    if path.is_file():
        return [path]
    images = list_images(path)
    videos = _videos_in(path)
    if images and videos:
        raise FaceswapError(
            f"{path}: holds both images ({len(images)}) and videos ({len(videos)}); "
            "move the videos to their own folder"
        )
    if videos:
        return videos
    if images:
        return [path]
    raise FaceswapError(f"{path}: no images or videos in this folder; check the path")


# ------------------------------------------------------------------------------- writing


class VideoWriter:
    """Encode RGB frames to a video file, with the audio of another file kept in sync.

    Use as a context manager::

        with VideoWriter(out, w, h, src.fps, audio_from=src.path) as writer:
            for frame in frames:
                writer.write(frame)

    Frames go through a pipe to ffmpeg, which writes a temporary file beside ``path``; it is
    renamed to ``path`` when the block ends normally and deleted when it raises. Frame ``i``
    is shown at ``i / fps`` seconds, so the output has exactly the frames written at exactly
    ``fps``. The audio streams of ``audio_from`` are stream-copied when the container
    accepts their codec (else re-encoded to AAC/Opus) and shifted so that their offset to
    the first video frame is the one they had in ``audio_from``.

    Args:
        path: Output file; its suffix picks the container (.mp4, .mov, .mkv, .webm...).
        width, height: Frame size in pixels (even for 4:2:0 pixel formats).
        fps: Exact frame rate.
        codec: ffmpeg video encoder (``libx264``, ``libx265``, ``h264_nvenc``...); see
            :func:`available_encoders` and :func:`pick_encoder`.
        crf: Constant quality, 0-51 for x264/x265 (lower is better; 18 is visually
            lossless), mapped onto each hardware encoder's own scale.
        preset: x264-style speed preset (``ultrafast`` ... ``veryslow``).
        pix_fmt: Output pixel format; ``auto`` is ``yuv420p`` (plays everywhere), or
            ``yuv444p`` for odd frame sizes, or lossless RGB for lossless codecs (see
            :func:`faceswap.io.ffmpeg_args.resolve_pix_fmt`); the one used is ``pix_fmt``.
        audio_from: Video whose audio to copy (usually the source of the frames).
        metadata: Container tags (custom keys are kept in mp4/mov too).
        timecode: Start timecode (``01:00:00:00``); by default that of ``audio_from``, so
            editors can conform the output against the source.
        sar: Pixel aspect ratio to store; by default that of ``audio_from`` (anamorphic
            sources stay anamorphic).
        colour: The colour tags the frames' code values are meant in; by default those of
            an HDR ``audio_from`` (:attr:`VideoInfo.output_colour`: HDR stays HDR, in 10-bit
            where the encoder has it), else BT.709.
        deep: frames are uint16 RGB (0-65535), from a source of more than 8 bits; ``auto``
            then picks the encoder's 10-bit format (16-bit RGB for ffv1), as for HDR.
    """

    def __init__(
        self,
        path: Path | str,
        width: int,
        height: int,
        fps: Fraction | int | str,
        *,
        codec: str = "libx264",
        crf: int = 18,
        preset: str = "medium",
        pix_fmt: str = "auto",
        audio_from: Path | str | None = None,
        metadata: Mapping[str, str] | None = None,
        timecode: str | None = None,
        sar: Fraction | None = None,
        colour: ffmpeg_args.ColourTags | None = None,
        deep: bool = False,
    ) -> None:
        self.path = Path(path)
        self.deep = deep
        self.width, self.height = int(width), int(height)
        self.fps = Fraction(fps)
        self.codec = codec
        self.frames_written = 0
        if self.width <= 0 or self.height <= 0 or self.fps <= 0:
            raise FaceswapError(f"{self.path}: invalid size {width}x{height} or fps {fps}")
        if pix_fmt in ffmpeg_args.CHROMA_420 and (self.width % 2 or self.height % 2):
            raise FaceswapError(
                f"{self.path}: {pix_fmt} needs an even frame size, got {width}x{height}; "
                "use pix_fmt auto or yuv444p (--pix-fmt), or crop or pad the frames by a pixel"
            )
        check_encoder(codec)
        if codec in ffmpeg_args.INTERMEDIATE and self.path.suffix.lower() in (".mp4", ".m4v"):
            raise FaceswapError(
                f"{self.path}: MP4 cannot hold {codec}; write ProRes and DNxHR to a .mov "
                "(or .mkv) file"
            )
        if self.path.suffix.lower() == ".webm" and not any(
            family in codec for family in ("vp8", "vp9", "vpx", "av1")
        ):
            raise FaceswapError(
                f"{self.path}: WebM holds VP8/VP9/AV1 video only, not {codec}; use codec "
                "libvpx-vp9, or an .mp4/.mkv output"
            )
        audio_codecs: tuple[str, ...] = ()
        subtitle_codecs: tuple[str, ...] = ()
        shift = 0.0
        if audio_from is not None:
            source = probe(audio_from)
            audio_codecs = tuple(a.codec for a in source.audio)
            subtitle_codecs = source.subtitles
            for i, name in enumerate(subtitle_codecs):
                if ffmpeg_args.subtitle_codec_for(self.path.suffix, name) is None:
                    log.warning(
                        "%s: subtitle stream %d (%s) cannot go into a %s file and is left "
                        "out; write .mkv to keep it",
                        self.path,
                        i,
                        name,
                        self.path.suffix or "suffix-less",
                    )
            # Our frame 0 is the source's first frame, so the source's clock moves back by
            # its video start (timestamps are kept as they are in the file: -copyts).
            shift = -source.start_time
            timecode = timecode if timecode is not None else (source.timecode or None)
            # The SAR describes the frames only if they are the source's own size.
            same_size = (source.width, source.height) == (self.width, self.height)
            sar = sar if sar is not None else (source.sar if same_size else None)
            colour = colour if colour is not None else source.output_colour
        self.colour = colour or ffmpeg_args.BT709
        # H.264 High 10 plays in few players (no browser, no phone decoder): an SDR source
        # of more than 8 bits still gets 8-bit H.264 unless asked (HDR needs its 10 bits).
        sdr_h264 = deep and not self.colour.hdr and codec in ffmpeg_args.H264_ENCODERS
        ten_bit = self.colour.hdr or (deep and not sdr_h264)
        if sdr_h264 and pix_fmt == "auto":
            log.info(
                "%s: a source of more than 8 bits, written as 8-bit H.264 (what players "
                "take); --pix-fmt yuv420p10le keeps 10 bits, or use libx265 or prores_ks",
                self.path,
            )
        resolved = ffmpeg_args.resolve_pix_fmt(
            pix_fmt, codec, self.width, self.height, ten_bit=ten_bit
        )
        if resolved != pix_fmt and resolved.startswith("yuv444p"):
            log.warning(
                "%s: %dx%d has an odd side, which subsampled chroma cannot hold: writing %s "
                "(some players and web sites need 4:2:0: crop or pad to an even size)",
                self.path,
                self.width,
                self.height,
                resolved,
            )
        if ten_bit and ffmpeg_args.pix_fmt_bits(resolved) <= 8:
            log.warning(
                "%s: %s written with %s in %s, 8 bits: gradients may band; libx265 or "
                "libx264 write 10 bits",
                self.path,
                "HDR" if self.colour.hdr else "a source of more than 8 bits",
                codec,
                resolved,
            )
        pix_fmt = self.pix_fmt = resolved
        self._atomic = atomic_path(self.path)
        self._tmp = self._atomic.__enter__()
        args = ffmpeg_args.encode_args(
            find_ffmpeg(),
            self._tmp,
            width=self.width,
            height=self.height,
            fps=self.fps,
            codec=codec,
            crf=crf,
            preset=preset,
            pix_fmt=pix_fmt,
            audio_from=audio_from,
            audio_shift=shift,
            audio_codecs=audio_codecs,
            subtitle_codecs=subtitle_codecs,
            metadata=metadata,
            timecode=timecode,
            sar=sar,
            colour=self.colour,
            version=ffmpeg_version(find_ffmpeg()),
            container_suffix=self.path.suffix,
            deep=deep,
        )
        try:
            self._proc = subprocess.Popen(
                args, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
            )
        except OSError as exc:
            self._atomic.__exit__(type(exc), exc, exc.__traceback__)
            raise FaceswapError(f"cannot start ffmpeg ({exc}); check `faceswap doctor`") from None
        self._drain = StderrDrain(self._proc)
        self._closed = False

    def _failure(self, what: str) -> FaceswapError:
        # ffmpeg names our temporary file, which the user never sees.
        tail = self._drain.tail().replace(str(self._tmp), str(self.path))
        if "no space left on device" in tail.lower():
            hint = "the disk is full: free some space or write elsewhere"
        elif self.codec != "libx264":
            hint = "choose another codec (libx264 always works) or check its options"
        else:
            hint = "check the encoder options (pix_fmt, preset), free disk space and the path"
        return FaceswapError(f"{self.path}: {what} ({tail or 'ffmpeg stopped'}); {hint}")

    def write(self, frame: np.ndarray) -> None:
        """Append one RGB frame of shape (height, width, 3): uint8, or uint16 when ``deep``
        (a uint8 frame is then widened: 255 to 65535)."""
        if self._closed:
            raise ValueError("write() on a closed VideoWriter")
        wanted = np.uint16 if self.deep else np.uint8
        if self.deep and frame.dtype == np.uint8:
            frame = frame.astype(np.uint16) * 257
        if frame.shape != (self.height, self.width, 3) or frame.dtype != wanted:
            raise ValueError(
                f"expected a {np.dtype(wanted)} frame of shape {(self.height, self.width, 3)}, "
                f"got {frame.dtype} {frame.shape}"
            )
        assert self._proc.stdin is not None
        try:
            self._proc.stdin.write(np.ascontiguousarray(frame).data)
        except (BrokenPipeError, OSError):
            self._proc.wait()
            error = self._failure(f"encoding failed at frame {self.frames_written}")
            self.abort()
            raise error from None
        self.frames_written += 1

    def close(self) -> Path:
        """Finish encoding and rename the file into place. Returns the final path."""
        if self._closed:
            return self.path
        assert self._proc.stdin is not None
        with contextlib.suppress(BrokenPipeError, OSError):
            self._proc.stdin.close()
        code = self._proc.wait()
        if code != 0 or self.frames_written == 0:
            error = (
                self._failure("encoding failed")
                if code != 0
                else FaceswapError(f"{self.path}: no frames were written; nothing to encode")
            )
            self.abort()
            raise error
        self._closed = True
        self._atomic.__exit__(None, None, None)
        return self.path

    def abort(self) -> None:
        """Stop ffmpeg and delete the temporary file; ``path`` is left untouched."""
        if self._closed:
            return
        self._closed = True
        if self._proc.poll() is None:
            self._proc.kill()
        if self._proc.stdin is not None:
            with contextlib.suppress(BrokenPipeError, OSError):
                self._proc.stdin.close()
        self._proc.wait()
        error = RuntimeError("video writing aborted")
        self._atomic.__exit__(RuntimeError, error, None)

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: types.TracebackType | None,
    ) -> None:
        if exc_type is not None:
            self.abort()
        else:
            self.close()

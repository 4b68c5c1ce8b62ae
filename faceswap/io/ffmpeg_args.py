"""Pure builders of ffmpeg argument lists: no process is started here.

Every ffmpeg invocation of the project is built by one function of this module and run by
``faceswap.io.video``. Keeping them pure makes the exact flags unit-testable without ffmpeg
(pixel format, frame-rate mode, stream maps, audio copy, metadata) and keeps the knowledge of
ffmpeg's quirks in one place.

All builders take the ffmpeg executable as their first argument and return ``list[str]``
starting with it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

# Containers and the audio codecs they can hold without re-encoding. Anything else is
# re-encoded (AAC; Opus for WebM, MP3 for AVI).
AUDIO_COPY_OK: dict[str, frozenset[str]] = {
    ".mp4": frozenset({"aac", "mp3", "ac3", "eac3", "alac", "opus", "flac"}),
    ".m4v": frozenset({"aac", "mp3", "ac3", "eac3", "alac"}),
    ".mov": frozenset({"aac", "mp3", "ac3", "eac3", "alac", "pcm_s16le", "pcm_s24le"}),
    ".mkv": frozenset(
        {"aac", "mp3", "ac3", "eac3", "alac", "opus", "vorbis", "flac", "pcm_s16le", "dts"}
    ),
    ".webm": frozenset({"opus", "vorbis"}),
    ".avi": frozenset({"mp3", "ac3", "pcm_s16le"}),
}
_FALLBACK_AUDIO = {".webm": "libopus", ".avi": "libmp3lame"}
# Samples of delay LAME puts before the audio (576 + 529), which only some containers record.
_LAME_DELAY = 1105

# Text subtitle codecs, which every container with subtitles can hold after conversion; the
# others (DVD, PGS and DVB bitmaps) only Matroska takes.
_TEXT_SUBTITLES = frozenset({"subrip", "srt", "ass", "ssa", "webvtt", "mov_text", "text"})

# Containers that store arbitrary global tags only when asked (the mov/mp4 muxer otherwise
# keeps a fixed list of iTunes-style keys and silently drops the rest).
_MOV_LIKE = {".mp4", ".m4v", ".mov"}

# How each encoder family takes a constant-quality value and a speed preset.
_X26X_PRESETS = (
    "ultrafast",
    "superfast",
    "veryfast",
    "faster",
    "fast",
    "medium",
    "slow",
    "slower",
    "veryslow",
    "placebo",
)
# NVENC uses p1 (fastest) .. p7 (best); map the x264 names onto it.
_NVENC_PRESETS = {
    "ultrafast": "p1",
    "superfast": "p1",
    "veryfast": "p2",
    "faster": "p3",
    "fast": "p3",
    "medium": "p4",
    "slow": "p5",
    "slower": "p6",
    "veryslow": "p7",
    "placebo": "p7",
}


# RGB <-> YUV conversions with exact rounding and full chroma interpolation. swscale's fast
# default darkens every frame by about 1.2 levels per conversion (measured: mean error -1.1 to
# -1.4 on a lossless 720p round trip, 0.0 with these flags) at ~5 ms per 720p frame.
SWS_FLAGS = "accurate_rnd+full_chroma_int"


def fps_str(fps: Fraction) -> str:
    """A frame rate as ffmpeg's exact ``num/den`` string (``30000/1001``, ``25/1``)."""
    fps = Fraction(fps)
    return f"{fps.numerator}/{fps.denominator}"


def probe_args(ffmpeg: str, path: Path | str) -> list[str]:
    """``ffmpeg -i path`` with no output: the stream description goes to stderr (exit 1)."""
    return [ffmpeg, "-hide_banner", "-nostdin", "-i", str(path)]


def count_packets_args(
    ffmpeg: str, path: Path | str, stream: str = "v:0", max_packets: int | None = None
) -> list[str]:
    """List every packet of one stream without decoding (framecrc on stdout).

    ``-copyts`` keeps the file's own timestamps, so the first pts is the stream's start;
    ``-c copy`` makes it a demux-only pass, fast even on long files. ``max_packets`` stops
    early (to read a stream's start).
    """
    args = [ffmpeg, "-hide_banner", "-nostdin", "-v", "error", "-copyts", "-i", str(path)]
    args += ["-map", f"0:{stream}", "-c", "copy"]
    if max_packets:
        args += ["-frames", str(max_packets)]
    return [*args, "-f", "framecrc", "-"]


def frame_select_filter(every_nth: int = 1, start: int = 0) -> str | None:
    """The ``select`` filter keeping frames ``start, start+n, start+2n, ...`` (or None: all).

    ``n`` in the expression is the decoded frame index, so selection is exact; frames not
    selected are dropped before the (costly) RGB conversion.
    """
    if every_nth < 1 or start < 0:
        raise ValueError("every_nth must be >= 1 and start >= 0")
    if every_nth == 1 and start == 0:
        return None
    if every_nth == 1:
        return f"select='gte(n\\,{start})'"
    return f"select='gte(n\\,{start})*not(mod(n-{start}\\,{every_nth}))'"


def rgb_pix_fmt(deep: bool = False) -> str:
    """The raw RGB format frames travel through pipes in: 8 bits, or 16 (``deep``, native
    little-endian: what numpy's uint16 is on the machines we run on)."""
    return "rgb48le" if deep else "rgb24"


def rgb_filters(
    every_nth: int = 1, start: int = 0, in_matrix: str | None = None, *, deep: bool = False
) -> str | None:
    """Filter chain for decoding to RGB: frame selection, then the YUV matrix if forced.

    ``in_matrix`` (``bt709``, ``bt601``...) is for sources without colour tags: ffmpeg then
    assumes BT.601, while players assume BT.709 for HD, so HD frames would come out with
    shifted colours. Tagged sources need nothing: ffmpeg follows their tags.
    """
    parts = [f for f in [frame_select_filter(every_nth, start)] if f]
    if in_matrix:
        parts += [
            f"scale=in_color_matrix={in_matrix}:flags={SWS_FLAGS}",
            f"format={rgb_pix_fmt(deep)}",
        ]
    return ",".join(parts) or None


def pix_fmt_bits(pix_fmt: str) -> int:
    """Bits per component of an ffmpeg pixel format: 10 for ``yuv420p10le`` and ``p010le``,
    16 for ``rgb48le`` and float formats, 8 for ``yuv420p``, ``nv12`` and the rest."""
    name = pix_fmt.lower()
    if name.startswith(("rgb48", "bgr48", "rgba64", "bgra64")) or re.search(
        r"f(16|32)(le|be)$", name
    ):
        return 16
    match = re.search(r"(\d{2})(?:le|be)$", name)  # yuv420p10le, p010le, gray16le, x2rgb10le
    bits = int(match.group(1)) if match else 8
    return bits if 9 <= bits <= 16 else 8


@dataclass(frozen=True)
class ColourTags:
    """How a video's code values are meant: YUV matrix, primaries and transfer, by the
    names ffmpeg's ``setparams`` takes (``bt709``; HLG is ``bt2020nc``/``bt2020``/
    ``arib-std-b67``, HDR10 ``bt2020nc``/``bt2020``/``smpte2084``)."""

    matrix: str = "bt709"
    primaries: str = "bt709"
    transfer: str = "bt709"

    @property
    def hdr(self) -> bool:
        """PQ or HLG transfer."""
        return self.transfer in HDR_TRANSFERS


#: SDR HD video: what outputs are tagged with unless told otherwise.
BT709 = ColourTags()
#: Transfer functions of HDR video (PQ, HLG) as ffmpeg names them.
HDR_TRANSFERS = ("smpte2084", "arib-std-b67")
# setparams' colorspace names -> swscale's out_color_matrix names.
_SWS_MATRIX = {
    "bt709": "bt709",
    "bt2020nc": "bt2020",
    "bt2020c": "bt2020",
    "smpte170m": "smpte170m",
    "bt470bg": "bt470",
    "smpte240m": "smpte240m",
    "fcc": "fcc",
}


def yuv_output_filter(pix_fmt: str, colour: ColourTags = BT709) -> str | None:
    """Convert RGB to YUV with ``colour``'s matrix and tag it, so players show what we wrote.

    Untagged output would be converted with swscale's BT.601 default but shown as BT.709 by
    players for HD: visibly shifted colours. RGB pixel formats need no matrix: None for
    BT.709, else just the primaries and transfer tags (an HDR master in RGB).
    """
    if not pix_fmt.startswith(("yuv", "nv", "p010")):
        if colour == BT709:
            return None
        return f"setparams=color_primaries={colour.primaries}:color_trc={colour.transfer}"
    matrix = _SWS_MATRIX.get(colour.matrix)
    if matrix is None:
        raise ValueError(f"no swscale matrix for colorspace {colour.matrix!r}")
    return (
        f"scale=out_color_matrix={matrix}:out_range=tv:flags={SWS_FLAGS},format={pix_fmt},"
        f"setparams=colorspace={colour.matrix}:color_primaries={colour.primaries}:"
        f"color_trc={colour.transfer}:range=tv"
    )


def passthrough_flags(version: tuple[int, int]) -> list[str]:
    """Output frames exactly as decoded: no duplicates, no drops (flag renamed in ffmpeg 5.1)."""
    return ["-fps_mode", "passthrough"] if version >= (5, 1) else ["-vsync", "passthrough"]


def decode_args(
    ffmpeg: str,
    path: Path | str,
    *,
    every_nth: int = 1,
    start: int = 0,
    version: tuple[int, int] = (6, 0),
    threads: int = 0,
    seek: float | None = None,
    stream: int = 0,
    in_matrix: str | None = None,
    deep: bool = False,
) -> list[str]:
    """Decode video stream ``stream`` to raw RGB24 frames on stdout (RGB48, 16 bits a
    component, with ``deep``: for sources of more than 8 bits).

    Display rotation is applied (ffmpeg's default autorotate), so frames come out upright at
    the displayed size. Audio, subtitles and data streams are ignored.

    ``seek`` (seconds from the file's start) jumps there before decoding (``-ss`` before
    ``-i``: accurate, frames before it are decoded and dropped); ``start`` then counts from
    the first frame at or after it. ``in_matrix`` overrides the YUV matrix of a source that
    does not tag one (see :func:`rgb_filters`).
    """
    args = [ffmpeg, "-hide_banner", "-nostdin", "-v", "error"]
    if threads:
        args += ["-threads", str(threads)]
    if seek is not None:
        args += ["-ss", f"{seek:.6f}"]
    args += ["-i", str(path), "-map", f"0:v:{stream}"]
    filters = rgb_filters(every_nth, start, in_matrix, deep=deep)
    if filters:
        args += ["-vf", filters]
    args += passthrough_flags(version)
    args += ["-sws_flags", SWS_FLAGS]
    args += ["-an", "-sn", "-dn", "-f", "rawvideo", "-pix_fmt", rgb_pix_fmt(deep), "pipe:1"]
    return args


#: Pixel formats whose chroma is subsampled in both directions: they need even frame sizes.
CHROMA_420 = frozenset({"yuv420p", "yuvj420p", "nv12", "yuv420p10le", "p010le"})
#: 10-bit 4:2:0 formats of the encoders that write 10-bit video (HDR outputs).
TEN_BIT_420 = {
    "libx264": "yuv420p10le",
    "libx265": "yuv420p10le",
    "libvpx-vp9": "yuv420p10le",
    "libaom-av1": "yuv420p10le",
    "libsvtav1": "yuv420p10le",
    "hevc_nvenc": "p010le",
    "av1_nvenc": "p010le",
    "hevc_qsv": "p010le",
    "hevc_vaapi": "p010le",
    "hevc_videotoolbox": "p010le",
}
#: H.264 encoders: 10-bit H.264 (High 10) plays in few players, so SDR output stays 8-bit.
H264_ENCODERS = frozenset({"libx264", "h264_nvenc", "h264_qsv", "h264_vaapi",
                           "h264_videotoolbox", "h264_amf"})  # fmt: skip
#: ProRes encoders; with DNxHR (``dnxhd``) the editing codecs: every frame intra-coded, 4:2:2
#: 10-bit, which editors and compositors cut and grade without generation loss.
PRORES = frozenset({"prores_ks", "prores", "prores_aw"})
INTERMEDIATE = PRORES | {"dnxhd"}
_DNXHR_PROFILES = {"yuv422p": "dnxhr_hq", "yuv422p10le": "dnxhr_hqx", "yuv444p10le": "dnxhr_444"}
# Software encoders that also take 10-bit 4:4:4 (odd frame sizes).
_TEN_BIT_444 = frozenset({"libx264", "libx265", "libvpx-vp9", "libaom-av1"})


def resolve_pix_fmt(
    pix_fmt: str, codec: str, width: int, height: int, *, ten_bit: bool = False
) -> str:
    """The output pixel format, with ``auto`` made concrete for ``codec`` and the frame size.

    ``auto`` keeps what the encoder can hold without loss where the codec is lossless
    (``rgb24`` for libx264rgb, ``bgr0`` for ffv1), takes the editing codecs' own 4:2:2
    (ProRes ``yuv422p10le``, DNxHR HQ ``yuv422p``, 10-bit HQX for HDR; 4:4:4 10-bit for odd
    widths), else ``yuv420p``, which plays everywhere, or ``yuv444p`` when the frame has an
    odd width or height, which 4:2:0 chroma cannot represent. With ``ten_bit`` (HDR
    output, or frames of more than 8 bits) ffv1 gets 16-bit RGB and an encoder that writes
    10-bit video its 10-bit format (:data:`TEN_BIT_420`, ``yuv444p10le`` for odd sizes
    where the encoder has it); others stay 8-bit. Any other name is returned as it is.
    """
    if pix_fmt != "auto":
        return pix_fmt
    if codec == "libx264rgb":
        return "rgb24"
    if codec == "ffv1":
        return "gbrp16le" if ten_bit else "bgr0"
    if codec in INTERMEDIATE:
        # 4:2:2 halves the chroma's width only: odd widths need 4:4:4.
        if width % 2:
            return "yuv444p10le"
        return "yuv422p" if codec == "dnxhd" and not ten_bit else "yuv422p10le"
    odd = bool(width % 2 or height % 2)
    if ten_bit and codec in TEN_BIT_420 and (not odd or codec in _TEN_BIT_444):
        return "yuv444p10le" if odd else TEN_BIT_420[codec]
    return "yuv444p" if odd else "yuv420p"


def video_codec_args(codec: str, crf: int, preset: str, pix_fmt: str) -> list[str]:
    """Encoder options: constant quality ``crf`` and ``preset`` in each family's own terms."""
    args = ["-c:v", codec]
    if codec in {"libx264", "libx265", "libx264rgb"}:
        args += ["-crf", str(crf)]
        if preset:
            if preset not in _X26X_PRESETS:
                raise ValueError(f"unknown preset {preset!r}; choose from {_X26X_PRESETS}")
            args += ["-preset", preset]
    elif codec.endswith("_nvenc"):
        args += ["-rc", "vbr", "-cq", str(crf), "-b:v", "0"]
        if preset:
            args += ["-preset", _NVENC_PRESETS.get(preset, preset)]
    elif codec.endswith("_qsv"):
        args += ["-global_quality", str(crf)]
        if preset in _X26X_PRESETS[:-1]:
            args += ["-preset", preset]
    elif codec.endswith("_vaapi"):
        args += ["-qp", str(crf)]
    elif codec.endswith("_videotoolbox"):
        # VideoToolbox's -q:v runs 1-100 (higher is better); map CRF 0-51 onto it.
        args += ["-q:v", str(max(1, min(100, round(100 - crf * 100 / 51))))]
    elif codec in PRORES:
        # Quality is the profile's: HQ for 4:2:2, 4444 for 4:4:4 (crf and preset do not apply).
        args += ["-profile:v", "4" if pix_fmt.startswith("yuv444") else "3"]
        if codec == "prores_ks":
            args += ["-vendor", "apl0"]  # what Apple's own players and NLEs expect
    elif codec == "dnxhd":
        args += ["-profile:v", _DNXHR_PROFILES.get(pix_fmt, "dnxhr_hq")]
    elif codec in {"libvpx-vp9", "libvpx", "libaom-av1", "libsvtav1"}:
        args += ["-crf", str(crf)]
        if codec.startswith("libvpx"):
            args += ["-b:v", "0"]
    if pix_fmt:
        args += ["-pix_fmt", pix_fmt]
    return args


def audio_codec_for(container_suffix: str, source_codec: str) -> str:
    """``copy`` when the container holds ``source_codec`` as is, else the encoder to use."""
    suffix = container_suffix.lower()
    allowed = AUDIO_COPY_OK.get(suffix)
    if allowed is None or source_codec in allowed:
        # Unknown containers: try a stream copy; ffmpeg reports if it cannot.
        return "copy"
    return _FALLBACK_AUDIO.get(suffix, "aac")


def subtitle_codec_for(container_suffix: str, source_codec: str) -> str | None:
    """``copy``, or the subtitle encoder that converts ``source_codec`` for the container, or
    None when the container cannot hold it (bitmap subtitles outside Matroska, AVI)."""
    suffix = container_suffix.lower()
    text = source_codec in _TEXT_SUBTITLES
    if suffix == ".mkv":
        return "srt" if source_codec == "mov_text" else "copy"
    if suffix in _MOV_LIKE and text:
        return "copy" if source_codec == "mov_text" else "mov_text"
    if suffix == ".webm" and text:
        return "copy" if source_codec == "webvtt" else "webvtt"
    return None


def encode_args(
    ffmpeg: str,
    output: Path | str,
    *,
    width: int,
    height: int,
    fps: Fraction,
    codec: str = "libx264",
    crf: int = 18,
    preset: str = "medium",
    pix_fmt: str = "yuv420p",
    audio_from: Path | str | None = None,
    audio_shift: float = 0.0,
    audio_codecs: tuple[str, ...] = (),
    subtitle_codecs: tuple[str, ...] = (),
    metadata: Mapping[str, str] | None = None,
    version: tuple[int, int] = (6, 0),
    container_suffix: str | None = None,
    timecode: str | None = None,
    sar: Fraction | None = None,
    colour: ColourTags = BT709,
    deep: bool = False,
) -> list[str]:
    """Encode raw RGB24 frames from stdin (RGB48 with ``deep``), muxing the audio of
    ``audio_from`` in sync.

    Args:
        ffmpeg: Executable.
        output: File to write (usually a temporary name; see ``container_suffix``).
        width, height: Frame size in pixels.
        fps: Exact frame rate of the frames written; frame ``i`` gets pts ``i / fps``.
        codec, crf, preset, pix_fmt: Video encoder settings (see :func:`video_codec_args`).
        audio_from: File whose audio streams are copied into the output.
        audio_shift: Seconds added to that file's own audio timestamps so that the audio
            keeps its offset to the first video frame, which is at 0 in the output: minus the
            video start of ``audio_from``.
        audio_codecs: Codec names of the audio streams of ``audio_from``, in order; each is
            stream-copied when the container allows it, else re-encoded.
        subtitle_codecs: Codec names of the subtitle streams of ``audio_from``; each is
            copied or converted (:func:`subtitle_codec_for`), or left out where the container
            cannot hold it. They keep their timing with the audio's shift.
        metadata: Global container tags.
        version: ``(major, minor)`` of ``ffmpeg`` (flag names changed over time).
        container_suffix: Suffix that decides the container (defaults to ``output``'s).
        timecode: SMPTE start timecode (``01:00:00:00``) for editors to conform with.
        sar: Sample (pixel) aspect ratio for anamorphic video (HDV 1440x1080 is 4/3).
        colour: The colour tags (and YUV matrix) the frames' code values are meant in.
    """
    suffix = (container_suffix or Path(output).suffix).lower()
    args = [ffmpeg, "-hide_banner", "-nostdin", "-v", "error", "-y"]
    args += ["-f", "rawvideo", "-pix_fmt", rgb_pix_fmt(deep), "-s", f"{width}x{height}"]
    args += ["-framerate", fps_str(fps), "-i", "pipe:0"]
    subtitles = [
        (i, target)
        for i, name in enumerate(subtitle_codecs if audio_from is not None else ())
        if (target := subtitle_codec_for(suffix, name)) is not None
    ]
    if audio_from is not None and (audio_codecs or subtitles):
        # -copyts: timestamps are the files' own, shifted only by us. Left to itself ffmpeg
        # re-bases each input on its start, which loses the audio offset of some sources
        # (MPEG-TS, measured: 0.18 s of lead-in dropped).
        args += ["-copyts"]
        if audio_shift:
            args += ["-itsoffset", f"{audio_shift:.6f}"]
        args += ["-i", str(audio_from)]
    args += ["-map", "0:v:0"]
    filters = [f for f in (yuv_output_filter(pix_fmt, colour),) if f]
    if sar is not None and sar != 1:
        filters.append(f"setsar={sar.numerator}/{sar.denominator}")
    if filters:
        args += ["-vf", ",".join(filters)]
    args += video_codec_args(codec, crf, preset, pix_fmt)
    args += ["-sws_flags", SWS_FLAGS]
    args += passthrough_flags(version)
    if audio_from is not None and audio_codecs:
        for i, source_codec in enumerate(audio_codecs):
            # Stream tags (language, title) survive the -map_metadata -1 below.
            args += ["-map", f"1:a:{i}", f"-map_metadata:s:a:{i}", f"1:s:a:{i}"]
            target = audio_codec_for(suffix, source_codec)
            args += [f"-c:a:{i}", target]
            if target != "copy":
                # Re-encoded audio starts at t=0 with silence filling any lead-in, so sync
                # does not depend on the container storing a start offset (AVI cannot).
                audio_filter = "aresample=async=1:first_pts=0"
                if suffix == ".avi" and target == "libmp3lame":
                    # AVI cannot say that LAME's first 1105 samples are encoder delay:
                    # start that much later in the source so the beat lands on time.
                    audio_filter += f",atrim=start_sample={_LAME_DELAY},asetpts=N/SR/TB"
                args += [f"-filter:a:{i}", audio_filter]
                args += [f"-b:a:{i}", "192k"]
    else:
        args += ["-an"]
    for j, (i, target) in enumerate(subtitles):
        args += ["-map", f"1:s:{i}", f"-map_metadata:s:s:{j}", f"1:s:s:{i}", f"-c:s:{j}", target]
    # -sn would also drop the subtitle streams mapped above.
    args += ["-dn"] if subtitles else ["-sn", "-dn"]
    # The source's global tags are dropped (phones store places and devices there); the
    # output's own tags follow.
    args += ["-map_metadata", "-1"]
    for key, value in (metadata or {}).items():
        args += ["-metadata", f"{key}={value}"]
    if timecode:
        args += ["-timecode", timecode]
    if suffix in _MOV_LIKE:
        # faststart: playable while downloading; use_metadata_tags: keep custom keys.
        flags = "+faststart+use_metadata_tags" if metadata else "+faststart"
        args += ["-movflags", flags]
    args += [str(output)]
    return args


def dump_frames_args(
    ffmpeg: str,
    path: Path | str,
    pattern: Path | str,
    *,
    every_nth: int = 1,
    start: int = 0,
    version: tuple[int, int] = (6, 0),
    png_compression: int = 1,
    jpeg_qscale: int = 2,
    seek: float | None = None,
    stream: int = 0,
    in_matrix: str | None = None,
    deep: bool = False,
) -> list[str]:
    """Write selected frames straight to image files numbered 0, 1, 2... (``pattern`` %06d).

    The k-th file written is source frame ``start + k * every_nth``; the caller renames.
    PNG uses a fast compression level (files ~30% larger than level 9, several times faster);
    JPEG uses ``-q:v jpeg_qscale`` (2 is near-lossless; see :func:`jpeg_qscale`).
    ``seek``, ``stream`` and ``in_matrix`` as in :func:`decode_args`; ``deep`` writes
    PNGs of 16 bits a component (for sources of more than 8).
    """
    args = [ffmpeg, "-hide_banner", "-nostdin", "-v", "error", "-y"]
    if seek is not None:
        args += ["-ss", f"{seek:.6f}"]
    args += ["-i", str(path), "-map", f"0:v:{stream}"]
    png = str(pattern).lower().endswith(".png")
    filters = rgb_filters(every_nth, start, in_matrix, deep=deep and png)
    if filters:
        args += ["-vf", filters]
    args += passthrough_flags(version)
    args += ["-sws_flags", SWS_FLAGS]
    if png:
        rgb = "rgb48be" if deep else "rgb24"  # PNG stores 16-bit samples big-endian
        args += ["-c:v", "png", "-compression_level", str(png_compression), "-pix_fmt", rgb]
    else:
        args += ["-c:v", "mjpeg", "-q:v", str(jpeg_qscale), "-pix_fmt", "yuvj444p"]
    # atomic_writing: each file is written under a temporary name and renamed when complete,
    # so a file that carries the pattern's name is always whole.
    args += ["-an", "-sn", "-dn", "-start_number", "0", "-f", "image2", "-atomic_writing", "1"]
    args += [str(pattern)]
    return args


def jpeg_qscale(quality: int) -> int:
    """ffmpeg mjpeg ``-q:v`` (2 best .. 31 worst) for a 0-100 JPEG quality."""
    return max(2, min(31, round(31 - 0.29 * quality)))


def encoder_test_args(ffmpeg: str, codec: str) -> list[str]:
    """Encode 5 grey 256x256 frames with ``codec`` to nowhere: does the encoder really work?"""
    return [
        *(ffmpeg, "-hide_banner", "-nostdin", "-v", "error"),
        *("-f", "lavfi", "-i", "color=c=gray:s=256x256:r=25:d=0.2"),
        *("-c:v", codec, "-pix_fmt", "yuv420p", "-f", "null", "-"),
    ]


def muxer_help_args(ffmpeg: str, muxer: str) -> list[str]:
    """Print a muxer's options (to test for one that older builds lack)."""
    return [ffmpeg, "-hide_banner", "-nostdin", "-h", f"muxer={muxer}"]


def encoders_args(ffmpeg: str) -> list[str]:
    """List the encoders compiled into ``ffmpeg`` (stdout)."""
    return [ffmpeg, "-hide_banner", "-nostdin", "-encoders"]


def version_args(ffmpeg: str) -> list[str]:
    return [ffmpeg, "-hide_banner", "-nostdin", "-version"]

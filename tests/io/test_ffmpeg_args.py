"""The ffmpeg argument builders, checked flag by flag without running ffmpeg."""

from __future__ import annotations

from fractions import Fraction

import pytest

from faceswap.io import ffmpeg_args as fa


def _after(args: list[str], flag: str) -> str:
    return args[args.index(flag) + 1]


def test_probe_and_count_packets() -> None:
    assert fa.probe_args("ff", "in.mp4") == ["ff", "-hide_banner", "-nostdin", "-i", "in.mp4"]
    args = fa.count_packets_args("ff", "in.mp4", "v:1")
    assert args[0] == "ff"
    assert "-copyts" in args and args.index("-copyts") < args.index("-i")
    assert _after(args, "-map") == "0:v:1"
    assert _after(args, "-c") == "copy"
    assert _after(args, "-f") == "framecrc"
    assert args[-1] == "-"


@pytest.mark.parametrize(
    ("every", "start", "expected"),
    [
        (1, 0, None),
        (1, 7, "select='gte(n\\,7)'"),
        (5, 0, "select='gte(n\\,0)*not(mod(n-0\\,5))'"),
        (3, 2, "select='gte(n\\,2)*not(mod(n-2\\,3))'"),
    ],
)
def test_frame_select_filter(every: int, start: int, expected: str | None) -> None:
    assert fa.frame_select_filter(every, start) == expected


def test_frame_select_filter_rejects_bad_values() -> None:
    with pytest.raises(ValueError):
        fa.frame_select_filter(0, 0)
    with pytest.raises(ValueError):
        fa.frame_select_filter(1, -1)


def test_decode_args_raw_rgb_passthrough() -> None:
    args = fa.decode_args("ff", "in.mov", every_nth=2, start=1, version=(7, 1))
    assert _after(args, "-i") == "in.mov"
    assert _after(args, "-map") == "0:v:0"
    assert _after(args, "-pix_fmt") == "rgb24"
    assert _after(args, "-f") == "rawvideo"
    assert _after(args, "-fps_mode") == "passthrough"
    assert _after(args, "-sws_flags") == "accurate_rnd+full_chroma_int"
    assert _after(args, "-vf").startswith("select=")
    assert "-an" in args and args[-1] == "pipe:1"
    assert "-vsync" not in args
    # Rotation must stay on (ffmpeg's default): we never pass -noautorotate.
    assert "-noautorotate" not in args


def test_decode_args_old_ffmpeg_uses_vsync() -> None:
    args = fa.decode_args("ff", "in.mp4", version=(5, 0))
    assert _after(args, "-vsync") == "passthrough"
    assert "-fps_mode" not in args and "-vf" not in args


def test_encode_args_video_only() -> None:
    args = fa.encode_args(
        "ff", "out.mkv", width=64, height=48, fps=Fraction(30000, 1001), crf=20, preset="fast"
    )
    assert args[: args.index("-i")][-6:] == [
        "-pix_fmt",
        "rgb24",
        "-s",
        "64x48",
        "-framerate",
        "30000/1001",
    ]
    assert _after(args, "-i") == "pipe:0"
    assert _after(args, "-c:v") == "libx264"
    assert _after(args, "-crf") == "20"
    assert _after(args, "-preset") == "fast"
    assert args[args.index("-pix_fmt", args.index("-i")) + 1] == "yuv420p"
    assert "-an" in args
    assert _after(args, "-sws_flags") == "accurate_rnd+full_chroma_int"
    assert "-movflags" not in args
    assert args[-1] == "out.mkv"


def test_encode_args_audio_copy_shift_and_metadata() -> None:
    args = fa.encode_args(
        "ff",
        "tmp.mp4",
        width=64,
        height=48,
        fps=Fraction(25),
        audio_from="src.mov",
        audio_shift=-0.32,
        audio_codecs=("aac", "pcm_s16le"),
        metadata={"faceswap": "synthetic", "comment": "a=b"},
    )
    inputs = [i for i, a in enumerate(args) if a == "-i"]
    assert [args[i + 1] for i in inputs] == ["pipe:0", "src.mov"]
    # The shift applies to the audio input only: it comes right before its -i.
    assert args[inputs[1] - 2 : inputs[1]] == ["-itsoffset", "-0.320000"]
    assert "-copyts" in args[: inputs[1]]
    maps = [args[i + 1] for i, a in enumerate(args) if a == "-map"]
    assert maps == ["0:v:0", "1:a:0", "1:a:1"]
    assert _after(args, "-c:a:0") == "copy"
    assert _after(args, "-c:a:1") == "aac"  # PCM does not go in mp4
    assert "-an" not in args
    assert "faceswap=synthetic" in args and "comment=a=b" in args
    assert "use_metadata_tags" in _after(args, "-movflags")
    # Source stream tags (languages) are kept, its global tags are not.
    assert _after(args, "-map_metadata:s:a:1") == "1:s:a:1"
    assert _after(args, "-map_metadata") == "-1"
    assert "-sn" in args  # no subtitles asked for


def test_encode_args_subtitles_mapped_converted_or_left_out() -> None:
    args = fa.encode_args(
        "ff",
        "tmp.mp4",
        width=64,
        height=48,
        fps=Fraction(25),
        audio_from="src.mkv",
        audio_shift=-0.5,
        subtitle_codecs=("hdmv_pgs_subtitle", "subrip"),
    )
    inputs = [i for i, a in enumerate(args) if a == "-i"]
    # Subtitles alone still bring in the source, shifted like its audio would be.
    assert [args[i + 1] for i in inputs] == ["pipe:0", "src.mkv"]
    assert args[inputs[1] - 2 : inputs[1]] == ["-itsoffset", "-0.500000"]
    maps = [args[i + 1] for i, a in enumerate(args) if a == "-map"]
    assert maps == ["0:v:0", "1:s:1"]  # the bitmap stream cannot go into mp4
    assert _after(args, "-c:s:0") == "mov_text"
    assert _after(args, "-map_metadata:s:s:0") == "1:s:s:1"
    assert "-sn" not in args and "-an" in args


@pytest.mark.parametrize(
    ("suffix", "codec", "expected"),
    [
        (".mkv", "hdmv_pgs_subtitle", "copy"),
        (".mkv", "subrip", "copy"),
        (".mkv", "mov_text", "srt"),
        (".mp4", "subrip", "mov_text"),
        (".MOV", "mov_text", "copy"),
        (".mp4", "dvd_subtitle", None),
        (".webm", "ass", "webvtt"),
        (".avi", "subrip", None),
    ],
)
def test_subtitle_codec_for(suffix: str, codec: str, expected: str | None) -> None:
    assert fa.subtitle_codec_for(suffix, codec) == expected


def test_encode_args_no_shift_flag_when_zero() -> None:
    args = fa.encode_args(
        "ff",
        "o.mp4",
        width=2,
        height=2,
        fps=Fraction(24),
        audio_from="s.mp4",
        audio_codecs=("aac",),
    )
    assert "-itsoffset" not in args
    assert "-metadata" not in args


@pytest.mark.parametrize(
    ("suffix", "codec", "expected"),
    [
        (".mp4", "aac", "copy"),
        (".mp4", "pcm_s16le", "aac"),
        (".mkv", "pcm_s16le", "copy"),
        (".webm", "aac", "libopus"),
        (".webm", "opus", "copy"),
        (".avi", "aac", "libmp3lame"),
        (".MOV", "alac", "copy"),
    ],
)
def test_audio_codec_for(suffix: str, codec: str, expected: str) -> None:
    assert fa.audio_codec_for(suffix, codec) == expected


def test_video_codec_args_per_family() -> None:
    nv = fa.video_codec_args("h264_nvenc", 19, "slow", "yuv420p")
    assert _after(nv, "-cq") == "19" and _after(nv, "-preset") == "p5"
    qsv = fa.video_codec_args("hevc_qsv", 22, "medium", "nv12")
    assert _after(qsv, "-global_quality") == "22" and _after(qsv, "-pix_fmt") == "nv12"
    vp9 = fa.video_codec_args("libvpx-vp9", 30, "medium", "yuv420p")
    assert _after(vp9, "-crf") == "30" and _after(vp9, "-b:v") == "0"
    vt = fa.video_codec_args("h264_videotoolbox", 18, "medium", "yuv420p")
    assert 1 <= int(_after(vt, "-q:v")) <= 100
    with pytest.raises(ValueError):
        fa.video_codec_args("libx264", 18, "warp-speed", "yuv420p")


@pytest.mark.parametrize(
    ("codec", "width", "height", "expected"),
    [
        ("libx264", 640, 360, "yuv420p"),
        ("libx264", 641, 360, "yuv444p"),
        ("libx265", 640, 361, "yuv444p"),
        ("h264_nvenc", 1920, 1080, "yuv420p"),
        ("libx264rgb", 641, 361, "rgb24"),
        ("ffv1", 640, 360, "bgr0"),
    ],
)
def test_resolve_pix_fmt_auto(codec: str, width: int, height: int, expected: str) -> None:
    assert fa.resolve_pix_fmt("auto", codec, width, height) == expected


def test_resolve_pix_fmt_keeps_a_named_format() -> None:
    assert fa.resolve_pix_fmt("yuv422p10le", "libx264", 641, 361) == "yuv422p10le"
    assert fa.resolve_pix_fmt("yuv420p", "ffv1", 640, 360) == "yuv420p"


def test_dump_frames_args() -> None:
    png = fa.dump_frames_args("ff", "in.mp4", "out/%06d.png", every_nth=4, version=(6, 1))
    assert _after(png, "-c:v") == "png" and _after(png, "-compression_level") == "1"
    assert _after(png, "-start_number") == "0" and png[-1] == "out/%06d.png"
    assert _after(png, "-fps_mode") == "passthrough"
    jpg = fa.dump_frames_args("ff", "in.mp4", "out/%06d.jpg")
    assert _after(jpg, "-c:v") == "mjpeg" and "-vf" not in jpg


def test_fps_str_is_exact() -> None:
    assert fa.fps_str(Fraction(30000, 1001)) == "30000/1001"
    assert fa.fps_str(Fraction(25)) == "25/1"


def test_colour_filters() -> None:
    yuv = fa.yuv_output_filter("yuv420p")
    assert yuv is not None
    assert "out_color_matrix=bt709" in yuv and "setparams=colorspace=bt709" in yuv
    assert fa.yuv_output_filter("rgb24") is None and fa.yuv_output_filter("gbrp") is None
    args = fa.encode_args("ff", "o.mp4", width=4, height=4, fps=Fraction(25))
    assert _after(args, "-vf") == yuv
    assert fa.rgb_filters() is None
    forced = fa.rgb_filters(2, 0, "bt709")
    assert forced is not None and forced.startswith("select=")
    assert forced.endswith(
        "scale=in_color_matrix=bt709:flags=accurate_rnd+full_chroma_int,format=rgb24"
    )
    decode = fa.decode_args("ff", "i.mp4", in_matrix="bt709")
    assert "in_color_matrix=bt709" in _after(decode, "-vf")


def test_small_builders() -> None:
    head = fa.count_packets_args("ff", "a.mkv", "a:1", max_packets=8)
    assert _after(head, "-frames") == "8" and _after(head, "-map") == "0:a:1"
    assert head.index("-frames") < head.index("-f")
    probe_enc = fa.encoder_test_args("ff", "h264_nvenc")
    assert _after(probe_enc, "-c:v") == "h264_nvenc" and probe_enc[-3:] == ["-f", "null", "-"]
    assert fa.muxer_help_args("ff", "image2")[-2:] == ["-h", "muxer=image2"]
    assert fa.jpeg_qscale(100) == 2 and fa.jpeg_qscale(0) == 31


def test_encode_args_timecode() -> None:
    args = fa.encode_args(
        "ff", "o.mov", width=4, height=4, fps=Fraction(24), timecode="10:00:00:00"
    )
    assert _after(args, "-timecode") == "10:00:00:00"
    assert "-timecode" not in fa.encode_args("ff", "o.mov", width=4, height=4, fps=Fraction(24))


def test_encode_args_sar() -> None:
    args = fa.encode_args("ff", "o.mkv", width=4, height=4, fps=Fraction(25), sar=Fraction(4, 3))
    assert _after(args, "-vf").endswith(",setsar=4/3")
    plain = fa.encode_args("ff", "o.mkv", width=4, height=4, fps=Fraction(25), sar=Fraction(1))
    assert "setsar" not in _after(plain, "-vf")


def test_hdr_colour_tags_and_ten_bit_formats() -> None:
    hlg = fa.ColourTags("bt2020nc", "bt2020", "arib-std-b67")
    assert hlg.hdr and not fa.BT709.hdr
    yuv = fa.yuv_output_filter("yuv420p10le", hlg)
    assert yuv is not None and "out_color_matrix=bt2020:" in yuv
    assert "setparams=colorspace=bt2020nc:color_primaries=bt2020:color_trc=arib-std-b67" in yuv
    # An RGB master has no matrix, but keeps its primaries and transfer.
    assert fa.yuv_output_filter("bgr0", hlg) == (
        "setparams=color_primaries=bt2020:color_trc=arib-std-b67"
    )
    args = fa.encode_args("ff", "o.mp4", width=4, height=4, fps=Fraction(25), colour=hlg,
                          pix_fmt="yuv420p10le")  # fmt: skip
    assert _after(args, "-vf") == yuv
    with pytest.raises(ValueError, match="colorspace 'ycgco'"):
        fa.yuv_output_filter("yuv420p", fa.ColourTags("ycgco", "bt709", "bt709"))
    ten = [
        (("libx264", 640, 360), "yuv420p10le"),
        (("libx265", 641, 360), "yuv444p10le"),
        (("hevc_nvenc", 640, 360), "p010le"),
        (("hevc_nvenc", 641, 360), "yuv444p"),  # no 10-bit 4:4:4 there: 8 bits
        (("h264_nvenc", 640, 360), "yuv420p"),  # NVENC's H.264 has no 10-bit
        (("ffv1", 640, 360), "gbrp16le"),  # lossless: 16-bit RGB
    ]
    for (codec, width, height), expected in ten:
        assert fa.resolve_pix_fmt("auto", codec, width, height, ten_bit=True) == expected
    assert fa.resolve_pix_fmt("yuv420p", "libx264", 640, 360, ten_bit=True) == "yuv420p"


def test_editing_codecs_get_their_own_formats_and_profiles() -> None:
    assert fa.resolve_pix_fmt("auto", "prores_ks", 640, 360) == "yuv422p10le"
    assert fa.resolve_pix_fmt("auto", "prores_ks", 641, 360) == "yuv444p10le"
    assert fa.resolve_pix_fmt("auto", "prores_ks", 640, 361) == "yuv422p10le"  # 4:2:2: rows ok
    assert fa.resolve_pix_fmt("auto", "dnxhd", 640, 360) == "yuv422p"
    assert fa.resolve_pix_fmt("auto", "dnxhd", 640, 360, ten_bit=True) == "yuv422p10le"
    hq = fa.video_codec_args("prores_ks", 18, "medium", "yuv422p10le")
    assert _after(hq, "-profile:v") == "3" and _after(hq, "-vendor") == "apl0"
    assert "-crf" not in hq and "-preset" not in hq
    assert _after(fa.video_codec_args("prores_ks", 18, "", "yuv444p10le"), "-profile:v") == "4"
    dnx = {f: _after(fa.video_codec_args("dnxhd", 18, "", f), "-profile:v") for f in
           ("yuv422p", "yuv422p10le", "yuv444p10le")}  # fmt: skip
    assert dnx == {"yuv422p": "dnxhr_hq", "yuv422p10le": "dnxhr_hqx", "yuv444p10le": "dnxhr_444"}


def test_deep_frames_travel_as_16_bit_rgb() -> None:
    decode = fa.decode_args("ff", "in.mov", deep=True)
    assert decode[-3:] == ["-pix_fmt", "rgb48le", "pipe:1"]
    assert _after(fa.decode_args("ff", "in.mov"), "-pix_fmt") == "rgb24"
    assert fa.rgb_filters(1, 0, "bt709", deep=True).endswith("format=rgb48le")
    encode = fa.encode_args("ff", "o.mov", width=4, height=4, fps=Fraction(25), deep=True)
    assert _after(encode, "-pix_fmt") == "rgb48le"  # the raw input's format comes first
    assert _after(fa.encode_args("ff", "o.mov", width=4, height=4, fps=Fraction(25)),
                  "-pix_fmt") == "rgb24"  # fmt: skip


@pytest.mark.parametrize(
    ("pix_fmt", "bits"),
    [
        ("yuv420p", 8), ("yuvj420p", 8), ("nv12", 8), ("rgb24", 8), ("bgr0", 8),
        ("rgb565le", 8), ("yuv420p10le", 10), ("p010le", 10), ("yuv422p10le", 10),
        ("y210le", 10), ("x2rgb10le", 10), ("gbrp12le", 12), ("yuv444p16le", 16),
        ("p016le", 16), ("gray16le", 16), ("rgb48le", 16), ("rgba64be", 16),
        ("gbrpf32le", 16),
    ],
)  # fmt: skip
def test_pix_fmt_bits(pix_fmt: str, bits: int) -> None:
    assert fa.pix_fmt_bits(pix_fmt) == bits

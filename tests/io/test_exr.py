"""OpenEXR frames: scene-linear in, through the sRGB transfer, and back out as linear floats."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import OpenEXR
import pytest

from faceswap.errors import FaceswapError
from faceswap.io.exr import (
    composite_linear,
    read_display,
    read_exr,
    srgb_decode,
    srgb_encode,
    write_exr,
)
from faceswap.io.images import list_images, read_image, write_image
from faceswap.io.video import open_source
from faceswap.provenance import read_provenance


def _plate(height: int = 24, width: int = 32, seed: int = 0) -> np.ndarray:
    """Linear half floats with a highlight above white and a deep shadow."""
    rng = np.random.default_rng(seed)
    rgb = rng.uniform(0.0, 1.0, size=(height, width, 3)).astype(np.float32)
    rgb[:4, :4] = 6.5  # a lamp: brighter than white
    rgb[-4:, -4:] = 0.0005
    return rgb.astype(np.float16).astype(np.float32)


def _write_raw(path: Path, channels: dict[str, np.ndarray], **attributes: object) -> Path:
    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
    header.update(attributes)
    with OpenEXR.File(header, channels) as exr:
        exr.write(str(path))
    return path


def test_the_srgb_transfer_inverts() -> None:
    x = np.linspace(0, 1, 1001, dtype=np.float32)
    assert np.abs(srgb_decode(srgb_encode(x)) - x).max() < 1e-5
    assert srgb_encode(np.float32([2.0, -1.0])) == pytest.approx([1.0, 0.0])  # clipped
    assert srgb_encode(np.float32([0.18]))[0] == pytest.approx(0.4614, abs=1e-3)  # mid grey


def test_plates_read_as_linear_and_as_display_pictures(tmp_path: Path) -> None:
    plate = _plate()
    path = _write_raw(tmp_path / "plate.exr", {"RGB": plate.astype(np.float16)})
    read = read_exr(path)
    assert np.array_equal(read.rgb, plate) and read.dtype == np.float16
    display = read_image(path, keep_16bit=True)
    assert display.dtype == np.uint16 and display.shape == plate.shape
    assert np.array_equal(display, read_display(path, keep_16bit=True))
    assert np.abs(display / 65535.0 - srgb_encode(plate)).max() < 1e-5
    assert (display[:4, :4] == 65535).all()  # the lamp clips in what the models see
    assert read_image(path).dtype == np.uint8
    assert path in list_images(tmp_path)
    source = open_source(tmp_path, deep=True)
    assert source.deep and (source.width, source.height) == (32, 24)


@pytest.mark.parametrize("layout", ["separate", "rgba", "grey"])
def test_other_channel_layouts(tmp_path: Path, layout: str) -> None:
    plate = _plate().astype(np.float16)
    if layout == "separate":
        channels = {name: np.ascontiguousarray(plate[..., i]) for i, name in enumerate("RGB")}
        channels["A"] = np.ones(plate.shape[:2], np.float16)
        expected = plate
    elif layout == "rgba":
        alpha = np.ones((*plate.shape[:2], 1), np.float16)
        channels = {"RGBA": np.ascontiguousarray(np.concatenate([plate, alpha], axis=2))}
        expected = plate
    else:
        channels = {"Y": np.ascontiguousarray(plate[..., 1])}
        expected = np.repeat(plate[..., 1:2], 3, axis=2)
    path = _write_raw(tmp_path / f"{layout}.exr", channels)
    assert np.array_equal(read_exr(path).rgb, expected.astype(np.float32))


def test_bad_exr_files_are_one_clear_line(tmp_path: Path) -> None:
    good = _write_raw(tmp_path / "good.exr", {"RGB": _plate().astype(np.float16)})
    cut = tmp_path / "cut.exr"
    cut.write_bytes(good.read_bytes()[:200])
    with pytest.raises(FaceswapError, match=r"cut\.exr: not a readable OpenEXR file"):
        read_image(cut)
    depth = _write_raw(tmp_path / "depth.exr", {"Z": np.ones((4, 4), np.float32)})
    with pytest.raises(FaceswapError, match=r"without R, G, B .* export the beauty pass"):
        read_image(depth)
    with pytest.raises(FaceswapError, match="no such image file"):
        read_image(tmp_path / "missing.exr")


def test_display_pictures_go_back_to_linear_with_their_tags(tmp_path: Path) -> None:
    plate = _plate()
    display = np.rint(srgb_encode(plate) * 65535).astype(np.uint16)
    path = write_image(tmp_path / "out.exr", display, text={"synthetic": "1", "comment": "x"})
    back = read_exr(path)
    assert back.dtype == np.float16
    assert np.abs(read_image(path, keep_16bit=True).astype(int) - display).max() <= 2
    assert read_provenance(path) == {"synthetic": "1", "comment": "x"}
    assert [p.name for p in tmp_path.iterdir()] == ["out.exr"]  # written through a temp file


def test_a_plates_floats_header_and_pixel_type_are_kept_outside_the_matte(tmp_path: Path) -> None:
    plate = _plate().astype(np.float32)
    source = _write_raw(
        tmp_path / "plate.exr",
        {"RGB": plate},  # full floats
        owner="the studio",
        pixelAspectRatio=2.0,
        dataWindow=(np.array([10, 20], np.int32), np.array([41, 43], np.int32)),
        displayWindow=(np.array([0, 0], np.int32), np.array([63, 63], np.int32)),
    )
    read = read_exr(source)
    assert read.dtype == np.float32
    swapped = np.rint(srgb_encode(read.rgb) * 65535).astype(np.uint16)
    swapped[8:16, 8:16] = 30000
    matte = np.zeros(plate.shape[:2], np.uint8)
    matte[8:16, 8:16] = 255
    out = write_exr(
        tmp_path / "out.exr",
        composite_linear(swapped, read.rgb, matte),
        text={"synthetic": "1"},
        like=read,
    )
    back = read_exr(out)
    outside = matte == 0
    assert np.array_equal(back.rgb[outside], plate[outside])  # bit for bit, lamp included
    assert back.rgb[0, 0, 0] == pytest.approx(6.5)
    assert np.allclose(back.rgb[8:16, 8:16], srgb_decode(np.float32(30000 / 65535)), rtol=1e-5)
    assert back.dtype == np.float32
    assert back.header["owner"] == "the studio" and back.header["pixelAspectRatio"] == 2.0
    assert np.asarray(back.header["dataWindow"]).ravel().tolist() == [10, 20, 41, 43]
    assert back.header["synthetic"] == "1"


def test_extract_finds_the_faces_of_exr_plates(tmp_path: Path) -> None:
    from faceswap.extract import ExtractConfig, run_extract
    from faceswap.faces.alignments import load_alignments
    from tests.media import Scene

    scene = Scene(frames=3)
    plates = tmp_path / "plates"
    plates.mkdir()
    for i in range(scene.frames):
        write_exr(plates / f"plate_{1001 + i}.exr", srgb_decode(scene.frame(i) / 255.0))
    out = tmp_path / "faces"
    run_extract(ExtractConfig(input=plates, output=out, detector="dlib-hog", size=64,
                              progress=False))  # fmt: skip
    al = load_alignments(out)
    assert [f.faces[0].crop_file for f in al.frames] == [
        f"plate_{1001 + i}_0.png" for i in range(3)
    ]
    for frame in al.frames:
        truth = scene.faces(frame.index)[0].landmarks
        assert np.abs(frame.faces[0].landmarks - truth).mean() < 2.0


@pytest.mark.parametrize("fmt", ["exr", "tif"])
def test_extract_frames_writes_exr_and_tiff_for_compositing(tmp_path: Path, fmt: str) -> None:
    from faceswap.io.frames import ExtractFramesConfig, run_extract_frames
    from tests.media import make_clip

    clip = make_clip(tmp_path / "clip.mp4", frames=4, audio=False)
    result = run_extract_frames(
        ExtractFramesConfig(input=clip.path, output=tmp_path / fmt, format=fmt)
    )
    assert result.frames_written == 4
    decoded = [f.image for f in open_source(clip.path).iter_frames()]
    files = sorted((tmp_path / fmt).glob(f"*.{fmt}"))
    assert [p.stem for p in files] == [f"frame_{i:06d}" for i in range(4)]
    for file, frame in zip(files, decoded, strict=True):
        if fmt == "exr":  # linear light: the decoded picture through the inverse transfer
            linear = read_exr(file).rgb
            assert np.allclose(linear, srgb_decode(frame / 255.0), atol=2e-3)
        assert np.abs(read_image(file).astype(int) - frame).max() <= 1

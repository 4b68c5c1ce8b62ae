"""`faceswap tune`: the contact sheet of one frame under each value of a setting."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from faceswap.cli import cli
from faceswap.convert import ConvertConfig, run_convert
from faceswap.convert.tune import TuneConfig, run_tune
from faceswap.errors import FaceswapError
from faceswap.io.images import read_image
from faceswap.provenance import read_provenance
from tests.media import ClipInfo


def _convert(clip: ClipInfo, model: Path, alignments: Path, out: Path, **kw: object):
    return ConvertConfig(input=clip.path, model_dir=model, output=out, alignments=alignments,
                         device="cpu", progress=False, batch_size=4, **kw)  # fmt: skip


def test_the_sheet_shows_the_frame_and_each_value(
    short_clip: ClipInfo, short_alignments: Path, model_dir: Path, tmp_path: Path
) -> None:
    base = _convert(short_clip, model_dir, short_alignments, tmp_path / "unused")
    sheet = tmp_path / "sheet.png"
    result = run_tune(TuneConfig(base, frame=3, vary="erode", values=(0.0, 15.0), output=sheet))
    assert result.values == (0.0, 15.0)
    image = read_image(sheet)
    h, w = short_clip.height, short_clip.width
    band = max(18, h // 16)
    assert image.shape == (h + band, 3 * w, 3)
    tiles = [image[band:, k * w : (k + 1) * w] for k in range(3)]
    # Tile 2 is frame 3 converted with erode 15, exactly as convert writes it.
    run_convert(_convert(short_clip, model_dir, short_alignments, tmp_path / "frames",
                         erode=15.0, frame_ranges="3", ranges_only=True))  # fmt: skip
    np.testing.assert_array_equal(tiles[2], read_image(tmp_path / "frames" / "frame_000003.png"))
    assert not np.array_equal(tiles[1], tiles[2]) and not np.array_equal(tiles[0], tiles[1])
    assert read_provenance(sheet)["synthetic"] == "1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frames", "frames.json", "sheet.png"]
    with pytest.raises(FaceswapError, match="--vary erode needs --values"):
        TuneConfig(base, frame=3, vary="erode", output=sheet)
    with pytest.raises(FaceswapError, match="past its 16 frames"):
        run_tune(TuneConfig(base, frame=99, vary="colour", values=("none",), output=sheet))
    with pytest.raises(FaceswapError, match="the sheet is a PNG"):
        TuneConfig(base, frame=3, vary="colour", output=tmp_path / "s.jpg")


def test_a_frame_without_a_face_is_refused_before_any_sheet(
    short_clip: ClipInfo, short_alignments: Path, model_dir: Path, tmp_path: Path
) -> None:
    sheet = tmp_path / "sheet.png"
    base = _convert(short_clip, model_dir, short_alignments, tmp_path / "unused")
    with pytest.raises(FaceswapError) as err:
        run_tune(TuneConfig(base, frame=9, vary="colour", values=("none",), output=sheet))
    assert str(err.value) == (
        f"{short_alignments}: frame 9 has no face; pick a --frame with one (nearest: 8 or 10)"
    )
    detected = _convert(short_clip, model_dir, None, tmp_path / "unused")  # type: ignore[arg-type]
    with pytest.raises(FaceswapError, match="no face to swap in frame 9; pick a --frame"):
        run_tune(TuneConfig(detected, frame=9, vary="colour", values=("none",), output=sheet))
    assert list(tmp_path.iterdir()) == []


def test_tune_from_the_command_line_defaults_to_every_colour_mode(
    short_clip: ClipInfo, short_alignments: Path, model_dir: Path, tmp_path: Path
) -> None:
    from faceswap.convert import COLOUR_MODES

    args = ["tune", str(short_clip.path), "-m", str(model_dir), "-a", str(short_alignments)]
    args += ["--frame", "2", "-o", str(tmp_path / "sheet.png"), "--device", "cpu"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert f"then colour {', '.join(COLOUR_MODES.names())}" in result.output
    bad = CliRunner().invoke(cli, [*args, "--vary", "erode", "--values", "1,x"])
    assert bad.exit_code == 2 and "takes numbers" in bad.output
    # a grade setting, on top of another one given for every tile
    graded = CliRunner().invoke(cli, [*args, "--vary", "brightness", "--values", "-20,20",
                                      "--contrast", "10"])  # fmt: skip
    assert graded.exit_code == 0, graded.output
    assert "then brightness -20.0, 20.0" in graded.output


def test_a_sheet_of_morph_values_for_a_liae_model(
    short_clip: ClipInfo, short_alignments: Path, tmp_path: Path
) -> None:
    import torch

    from faceswap.nets import build_model, load_preset, scaled
    from faceswap.train.checkpoint import save_model

    from .conftest import MODEL_CROP

    torch.manual_seed(0)
    liae = build_model(scaled(load_preset("liae"), 1 / 32, resolution=32))
    save_model(tmp_path / "liae", liae, crop=MODEL_CROP, card={"preset": "liae"})
    base = _convert(short_clip, tmp_path / "liae", short_alignments, tmp_path / "unused")
    sheet = tmp_path / "sheet.png"
    result = run_tune(TuneConfig(base, frame=3, vary="morph", values=(0.5, 1.0), output=sheet))
    assert result.values == (0.5, 1.0)
    w = short_clip.width
    image = read_image(sheet)
    band = image.shape[0] - short_clip.height
    tiles = [image[band:, k * w : (k + 1) * w] for k in range(3)]
    assert not np.array_equal(tiles[1], tiles[2]) and not np.array_equal(tiles[0], tiles[1])

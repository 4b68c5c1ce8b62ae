"""The `faceswap convert` command: options from the registries, one-line errors, a real run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from faceswap.cli import cli
from faceswap.convert import COLOUR_MODES, MASK_MODES
from faceswap.io.images import write_image
from faceswap.io.video import open_source, probe
from tests.media import ClipInfo, face_photo


def test_help_lists_every_mode() -> None:
    result = CliRunner().invoke(cli, ["convert", "--help"])
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    for name in [*MASK_MODES.names(), *COLOUR_MODES.names()]:
        assert name in text
    for option in ("--alignments", "--direction", "--ref", "--batch-size", "--codec", "--crf"):
        assert option in text


def test_bad_input_is_one_line_exit_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["convert", str(tmp_path / "missing.mp4"), "-m", str(tmp_path), "-o", "o.mp4"]
    )
    assert result.exit_code == 2
    assert result.stderr.startswith("faceswap: error: ")
    assert "missing.mp4" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_unknown_colour_mode_names_choices(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["convert", "x.mp4", "-m", str(tmp_path), "-o", "o.mp4", "--colour", "sepia"]
    )
    assert result.exit_code == 2 and "rct" in result.stderr


@pytest.mark.slow
@pytest.mark.parametrize(
    ("option", "person"), [("--ref", "astronaut"), ("--not-ref", "grace_hopper")]
)
def test_on_the_fly_detection_swaps_only_the_ref_person(
    clip_two_faces: ClipInfo,
    model_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    option: str,
    person: str,
) -> None:
    from faceswap import device

    monkeypatch.setattr(device, "cpu_has_native_bf16", lambda: True)  # a tip after the run
    ref = write_image(tmp_path / f"{person}.png", np.array(face_photo(person)))
    out = tmp_path / "out.mkv"
    args = ["convert", str(clip_two_faces.path), "-m", str(model_dir), "-o", str(out)]
    args += [option, str(ref), "--detector", "dlib-hog", "--codec", "ffv1", "--pix-fmt", "bgr0"]
    args += ["--device", "cpu", "--no-progress", "--colour", "avg"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output + str(result.stderr)
    assert "wrote" in result.output
    assert result.stderr.strip().splitlines()[-1].startswith("tip: ")
    assert "add --amp" in result.stderr
    assert probe(out).frame_count == clip_two_faces.frame_count
    before = [f.image for f in open_source(clip_two_faces.path).iter_frames()]
    after = [f.image for f in open_source(out).iter_frames()]
    changed_left = 0
    for i, (a, b) in enumerate(zip(after, before, strict=True)):
        for face in clip_two_faces.faces[i]:
            x0, y0, x1, y1 = (int(v) for v in face.box)
            same = np.array_equal(a[y0:y1, x0:x1], b[y0:y1, x0:x1])
            if face.person == "astronaut":
                changed_left += not same
            else:
                assert same, f"frame {i}: {face.person} was swapped too"
    assert changed_left >= 0.8 * clip_two_faces.frame_count


@pytest.mark.slow
def test_two_people_in_one_shot_in_two_passes(
    clip_two_faces: ClipInfo, model_dir: Path, tmp_path: Path
) -> None:
    # The README's recipe: each actor by their own model, one convert pass each, the first
    # to a lossless intermediate (the same model stands in for both here).
    from faceswap.verify import VerifyConfig, run_verify

    refs = {p: write_image(tmp_path / f"{p}.png", np.array(face_photo(p)))
            for p in ("astronaut", "grace_hopper")}  # fmt: skip
    common = ["-m", str(model_dir), "--detector", "dlib-hog", "--device", "cpu", "--no-progress"]
    first, final = tmp_path / "pass1.mkv", tmp_path / "final.mp4"
    runner = CliRunner()
    one = ["convert", str(clip_two_faces.path), "-o", str(first), "--ref", str(refs["astronaut"])]
    result = runner.invoke(cli, [*one, *common, "--codec", "ffv1", "--pix-fmt", "bgr0"])
    assert result.exit_code == 0, result.output + str(result.stderr)
    two = ["convert", str(first), "-o", str(final), "--ref", str(refs["grace_hopper"])]
    result = runner.invoke(cli, [*two, *common, "--crf", "18"])
    assert result.exit_code == 0, result.output + str(result.stderr)
    info = probe(final)
    assert info.frame_count == clip_two_faces.frame_count and info.has_audio
    source = [f.image for f in open_source(clip_two_faces.path).iter_frames()]
    middle = [f.image for f in open_source(first).iter_frames()]
    changed = {"astronaut": 0, "grace_hopper": 0}
    for i, (a, b) in enumerate(zip(middle, source, strict=True)):
        for face in clip_two_faces.faces[i]:
            x0, y0, x1, y1 = (int(v) for v in face.box)
            if face.person == "grace_hopper":  # the first pass leaves the second actor alone
                assert np.array_equal(a[y0:y1, x0:x1], b[y0:y1, x0:x1])
    out = [f.image for f in open_source(final).iter_frames()]
    for i, (a, b) in enumerate(zip(out, middle, strict=True)):
        for face in clip_two_faces.faces[i]:
            x0, y0, x1, y1 = (int(v) for v in face.box)
            moved = np.abs(a[y0:y1, x0:x1].astype(int) - b[y0:y1, x0:x1]).mean()
            changed[face.person] += moved > 4.0  # beyond the crf 18 encode's error
    n = clip_two_faces.frame_count
    assert changed["grace_hopper"] >= 0.8 * n and changed["astronaut"] <= 0.1 * n, changed
    assert run_verify(VerifyConfig(final, frames=12)).watermark.found


def test_a_folder_of_videos_converts_into_a_folder(model_dir: Path, tmp_path: Path) -> None:
    from tests.convert.conftest import truth_alignments
    from tests.media import make_clip

    takes, faces = tmp_path / "takes", tmp_path / "faces"
    clips = [make_clip(takes / name, frames=5, width=320, height=192, seed=i)
             for i, name in enumerate(("one.mp4", "two.mkv"))]  # fmt: skip
    for clip in clips:  # the layout `faceswap extract takes/ -o faces` writes
        truth_alignments(clip, faces / clip.path.stem / "alignments.json")
    out, mattes = tmp_path / "swapped", tmp_path / "mattes"
    args = ["convert", str(takes), "-m", str(model_dir), "-o", str(out), "-a", str(faces)]
    args += ["--matte", str(mattes), "--device", "cpu", "--no-progress", "--preset", "ultrafast"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output + str(result.stderr)
    assert sorted(p.name for p in out.iterdir()) == [
        "one.mp4", "one.mp4.json", "two.mkv", "two.mkv.json"
    ]  # fmt: skip
    assert sorted(p.name for p in mattes.iterdir()) == ["one.mp4", "two.mkv"]
    for clip in clips:
        assert probe(out / clip.path.name).frame_count == 5
        assert probe(out / clip.path.name).has_audio
    # A video without alignments is reported and the others still convert; exit 1, one line.
    (faces / "two" / "alignments.json").unlink()
    again = ["convert", str(takes), "-m", str(model_dir), "-o", str(tmp_path / "again")]
    result = CliRunner().invoke(cli, [*again, "-a", str(faces), "--device", "cpu", "--no-progress"])
    assert result.exit_code != 0
    assert (tmp_path / "again" / "one.mp4").is_file()
    assert not (tmp_path / "again" / "two.mkv").exists()
    assert result.stderr.strip().splitlines()[-1] == (
        "faceswap: error: 1 of 2 videos were not converted (two.mkv); see the errors above, "
        "fix them and rerun"
    )
    # Fixed, the same command with --resume converts only what is missing.
    truth_alignments(clips[1], faces / "two" / "alignments.json")
    done = (tmp_path / "again" / "one.mp4").stat().st_mtime_ns
    flags = ["-a", str(faces), "--device", "cpu", "--no-progress", "--resume"]
    result = CliRunner().invoke(cli, [*again, *flags])
    assert result.exit_code == 0, result.output + str(result.stderr)
    assert "skipped 1 videos converted by the stopped run" in result.output
    assert (tmp_path / "again" / "one.mp4").stat().st_mtime_ns == done
    assert probe(tmp_path / "again" / "two.mkv").frame_count == 5
    result = CliRunner().invoke(cli, ["convert", str(takes), "-m", str(model_dir), "-o", "x.mp4"])
    assert result.exit_code != 0 and "converts into a folder" in result.stderr


def test_video_to_frames_tells_how_to_encode_them_back(
    short_clip: ClipInfo, short_alignments: Path, model_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "frames"
    args = ["convert", str(short_clip.path), "-m", str(model_dir), "-o", str(out)]
    args += ["-a", str(short_alignments), "--device", "cpu", "--no-progress"]
    result = CliRunner().invoke(cli, [*args, "--frame-format", "tif"])
    assert result.exit_code == 0, result.output + str(result.stderr)
    assert len(list(out.glob("frame_*.tif"))) == probe(short_clip.path).frame_count
    assert f"faceswap encode-frames {out} -o VIDEO --like {short_clip.path}" in result.output


def test_a_photo_converts_to_a_photo(model_dir: Path, tmp_path: Path) -> None:
    from tests.media import make_image_folder

    (photo,) = make_image_folder(tmp_path / "in", 1, ext="jpg", people=("grace_hopper",)).files
    base = ["convert", str(photo), "-m", str(model_dir), "--device", "cpu", "--no-progress"]
    result = CliRunner().invoke(cli, [*base, "-o", str(tmp_path / "swap.jpg")])
    assert result.exit_code == 0, result.output + str(result.stderr)
    assert (tmp_path / "swap.jpg").is_file()
    assert "1 frame, 1 face swapped in 1 frame" in result.output
    # Into a folder: one frame, and no hint about encoding frames back into a video.
    result = CliRunner().invoke(cli, [*base, "-o", str(tmp_path / "swapped")])
    assert result.exit_code == 0, result.output + str(result.stderr)
    assert [p.suffix for p in (tmp_path / "swapped").iterdir()] == [".png"]
    assert "encode-frames" not in result.output

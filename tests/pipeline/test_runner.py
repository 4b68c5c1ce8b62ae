"""Pipeline specs: parsing into command lines, and the runner's run/skip decisions."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from faceswap.cli import cli
from faceswap.errors import FaceswapError
from faceswap.io.video import probe
from faceswap.pipeline import RunConfig, load_spec, run_pipeline
from faceswap.pipeline.runner import fingerprint, state_path
from tests.media import make_clip


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_options_become_the_command_line(tmp_path: Path) -> None:
    spec = _write(
        tmp_path / "p.yaml",
        """
vars: {work: out, faces: "${work}/faces"}
stages:
  faces:
    extract: {input: clip.mp4, o: "${faces}", detector: dlib-hog, every_nth: 2,
              ref: [me.png, me2.png], detect-every: 5}
  model:
    train: {a: "${faces}", b: [fb1, fb2], model_dir: m, warp: false, amp: true, lr: 0.0001,
            preset: presets/h128_mask.yaml}
""",
    )
    faces, model = load_spec(spec).stages
    out = (tmp_path / "out" / "faces").resolve()
    assert faces.command == "extract" and faces.outputs == (out,)
    argv = list(faces.argv)
    assert argv[0] == str((tmp_path / "clip.mp4").resolve())  # the argument comes first
    assert argv[argv.index("--output") + 1] == str(out)
    assert argv[argv.index("--detector") + 1] == "dlib-hog"
    assert argv[argv.index("--every-nth") + 1] == "2"
    assert [argv[i + 1] for i, a in enumerate(argv) if a == "--ref"] == [
        str((tmp_path / n).resolve()) for n in ("me.png", "me2.png")
    ]
    assert argv[-1] == "--no-progress"
    assert faces.inputs == tuple(
        (tmp_path / n).resolve() for n in ("clip.mp4", "me.png", "me2.png")
    )
    margv = list(model.argv)
    assert "--no-warp" in margv and "--amp" in margv and margv.count("--b") == 2
    assert model.outputs == ((tmp_path / "m").resolve(),)
    assert out in model.inputs
    # A preset YAML is a file like the others: found beside the spec, and an input.
    preset = (tmp_path / "presets" / "h128_mask.yaml").resolve()
    assert margv[margv.index("--preset") + 1] == str(preset) and preset in model.inputs
    # masks writes into the faces folder it reads: an output, and an input too.
    (masks,) = load_spec(_write(tmp_path / "m.yaml", "stages: {m: {masks: {input: f}}}")).stages
    assert masks.outputs == masks.inputs == ((tmp_path / "f").resolve(),)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("stages: {x: {bake: {}}}", "unknown stage command 'bake'; choose from extract-frames"),
        ("stages: {x: {extract: {input: a, colour: rct}}}", "extract has no option 'colour'"),
        ("stages: {x: {extract: {input: '${nope}'}}}", "unknown variable ${nope}"),
        ("stages: {x: {extract: {input: a}, train: {}}}", "a stage is one command"),
        ("stages: {x: {convert: {output: [a, b]}}}", "stages.x.output: one value, got a list"),
        ("stages: {x: {train: {warp: maybe}}}", "stages.x.warp: true or false"),
        ("stages: {x: {train: {a: fa, b: fb}}}", "stages.x: train needs model-dir"),
        ("stages: {x: {extract: {output: f}}}", "stages.x: extract needs input"),
        ("stages: {}", "no stages"),
        ("stage: {}", "unknown key(s) stage"),
    ],
)
def test_bad_specs_name_the_file_and_the_stage(tmp_path: Path, body: str, message: str) -> None:
    spec = _write(tmp_path / "bad.yaml", body)
    with pytest.raises(FaceswapError) as err:
        load_spec(spec)
    assert str(err.value).startswith(str(spec)) and message in str(err.value)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A two-stage spec of cheap real commands: frames out of a clip, and back to a video."""
    make_clip(tmp_path / "clip.mp4", frames=6, width=320, height=192, audio=False)
    return _write(
        tmp_path / "project.yaml",
        """
stages:
  frames:
    extract-frames: {input: clip.mp4, output: frames}
  video:
    encode-frames: {input: frames, output: back.mp4, like: clip.mp4, preset: ultrafast}
""",
    )


def _run(spec: Path, **kw: object) -> dict[str, str]:
    result = run_pipeline(RunConfig(spec=spec, **kw))  # type: ignore[arg-type]
    return {s.name: f"{s.action}: {s.reason}" for s in result.stages}


def test_runs_then_skips_what_did_not_change(project: Path) -> None:
    folder = project.parent
    assert _run(project) == {"frames": "ran: never ran", "video": "ran: never ran"}
    assert probe(folder / "back.mp4").frame_count == 6
    state = json.loads(state_path(project).read_text())
    assert set(state["stages"]) == {"frames", "video"}
    assert _run(project) == {"frames": "skipped: unchanged", "video": "skipped: unchanged"}

    # An option of the second stage: only it runs again.
    project.write_text(project.read_text().replace("ultrafast", "veryfast"))
    assert _run(project) == {"frames": "skipped: unchanged", "video": "ran: its options changed"}

    # A dry run says what would run, and that a stage reading a rerun's output follows it.
    assert _run(project, dry_run=True, force=("frames",)) == {
        "frames": "would run: forced",
        "video": "would run: frames runs before it",
    }
    # A new source clip: both run, and the frames are extracted afresh (not kept from the
    # earlier run, as extract-frames alone would).
    clip = folder / "clip.mp4"
    os.utime(clip, ns=(clip.stat().st_atime_ns, clip.stat().st_mtime_ns + 10**9))
    first_frame = folder / "frames" / "frame_000000.png"
    before = first_frame.stat().st_mtime_ns
    assert _run(project) == {"frames": "ran: clip.mp4 changed", "video": "ran: frames changed"}
    assert first_frame.stat().st_mtime_ns != before

    # A deleted output runs its stage again; an output changed by hand does not.
    (folder / "back.mp4").unlink()
    assert _run(project) == {"frames": "skipped: unchanged", "video": "ran: back.mp4 is missing"}
    (folder / "frames" / "frame_000005.png").unlink()  # a frame dropped by hand
    assert _run(project) == {"frames": "skipped: unchanged", "video": "ran: frames changed"}
    assert probe(folder / "back.mp4").frame_count == 5

    assert _run(project, only=("video",), force=("video",)) == {"video": "ran: forced"}
    assert _run(project, force=("all",)) == {"frames": "ran: forced", "video": "ran: forced"}


def test_a_failing_stage_stops_the_run_and_keeps_earlier_stages(project: Path) -> None:
    project.write_text(project.read_text().replace("like: clip.mp4", "like: gone.mp4"))
    with pytest.raises(FaceswapError, match=r"^stage video \(encode-frames\): .*gone\.mp4"):
        run_pipeline(RunConfig(spec=project))
    state = json.loads(state_path(project).read_text())
    assert list(state["stages"]) == ["frames"]  # the next run starts at the failed stage
    with pytest.raises(FaceswapError, match="no stage 'sound'; stages: frames, video"):
        run_pipeline(RunConfig(spec=project, only=("sound",)))


def test_a_corrupt_state_file_runs_everything_again(project: Path) -> None:
    _run(project)
    state_path(project).write_text("{not json")
    assert _run(project) == {"frames": "ran: never ran", "video": "ran: never ran"}


def test_fingerprints_leave_out_hidden_files(tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(b"1")
    before = fingerprint(tmp_path)
    (tmp_path / ".faceswap-cache").mkdir()
    (tmp_path / ".faceswap-cache" / "faces.npy").write_bytes(b"cache")
    (tmp_path / ".x.tmp").write_bytes(b"half")
    assert fingerprint(tmp_path) == before
    (tmp_path / "b.png").write_bytes(b"2")
    assert fingerprint(tmp_path) != before
    assert fingerprint(tmp_path / "none") == "missing"


def test_cli_prints_each_stage_and_fails_in_one_line(project: Path) -> None:
    first = CliRunner().invoke(cli, ["run", str(project)])
    assert first.exit_code == 0, first.output
    assert "frames (extract-frames): running: never ran" in first.output
    assert first.output.strip().endswith("2 stages ran, 0 unchanged")
    again = CliRunner().invoke(cli, ["run", str(project), "--dry-run"])
    assert again.exit_code == 0 and again.output.strip().endswith("0 stages would run, 2 unchanged")
    bad = CliRunner().invoke(cli, ["run", str(project.parent / "missing.yaml")])
    assert bad.exit_code == 2
    assert bad.stderr.strip() == f"faceswap: error: {project.parent / 'missing.yaml'}: no such file"


@pytest.mark.slow
def test_a_whole_project_reruns_only_what_changed(tmp_path: Path) -> None:
    from faceswap.verify import VerifyConfig, run_verify

    make_clip(tmp_path / "a.mp4", frames=12, people=("astronaut",), audio=True, seed=1)
    make_clip(tmp_path / "b.mp4", frames=12, people=("grace_hopper",), audio=False, seed=2)
    spec = _write(
        tmp_path / "project.yaml",
        """
vars: {work: work}
stages:
  faces_a:
    extract: {input: a.mp4, output: "${work}/faces_a", detector: dlib-hog, size: 64}
  faces_b:
    extract: {input: b.mp4, output: "${work}/faces_b", detector: dlib-hog, size: 64}
  model:
    train: {a: "${work}/faces_a", b: "${work}/faces_b", model-dir: "${work}/model",
            preset: tiny, iterations: 4, batch-size: 4, workers: 0, save-every: 4,
            preview-every: 4, tensorboard: false}
  swap:
    convert: {input: a.mp4, model: "${work}/model", output: "${work}/swap.mp4",
              alignments: "${work}/faces_a/alignments.json", preset: ultrafast}
  report:
    evaluate: {input: "${work}/swap.mp4", source: a.mp4, frames: 4,
               output: "${work}/report.json"}
""",
    )
    names = ("faces_a", "faces_b", "model", "swap", "report")
    assert set(_run(spec).values()) == {"ran: never ran"}
    work = tmp_path / "work"
    assert probe(work / "swap.mp4").frame_count == 12
    assert run_verify(VerifyConfig(work / "swap.mp4")).marked
    assert _run(spec) == dict.fromkeys(names, "skipped: unchanged")

    # The next phase of training: the model goes on from its checkpoint, convert follows.
    spec.write_text(spec.read_text().replace("iterations: 4", "iterations: 8"))
    assert _run(spec) == {
        "faces_a": "skipped: unchanged",
        "faces_b": "skipped: unchanged",
        "model": "ran: its options changed",
        "swap": "ran: work/model changed",
        "report": "ran: work/swap.mp4 changed",
    }
    assert json.loads((work / "report.json").read_text())["frames"] == 4
    card = json.loads((work / "model" / "model_card.json").read_text())
    assert card["iteration"] == 8

    # A train stage stopped by --max-minutes has not finished: nothing after it runs, and
    # the next run trains on.
    spec.write_text(
        spec.read_text().replace("iterations: 8", "iterations: 100000, max-minutes: 0.001")
    )
    result = run_pipeline(RunConfig(spec=spec))
    assert result.ended_early is not None and result.ended_early.name == "model"
    assert [s.action for s in result.stages] == ["skipped", "skipped", "stopped"]
    stopped_at = json.loads((work / "model" / "model_card.json").read_text())["iteration"]
    assert 8 < stopped_at < 100000
    again = run_pipeline(RunConfig(spec=spec, dry_run=True))
    assert [s.action for s in again.stages] == ["skipped", "skipped", *["would run"] * 3]


def test_an_extract_that_redoes_empty_frames_builds_on_its_output(tmp_path: Path) -> None:
    from faceswap.faces.alignments import load_alignments

    make_clip(tmp_path / "turn.mp4", frames=20, audio=False, roll=8.0)  # to 152 degrees
    spec = _write(
        tmp_path / "project.yaml",
        """
stages:
  faces:
    extract: {input: turn.mp4, output: faces, detector: dlib-hog, size: 48,
              redo-empty: true}
""",
    )
    assert _run(spec) == {"faces": "ran: never ran"}  # nothing earlier: a whole extract
    first = load_alignments(tmp_path / "faces")
    empty = [f.index for f in first.frames if not f.faces]
    assert empty
    spec.write_text(spec.read_text().replace("redo-empty: true", "redo-empty: true, rotate: 45"))
    assert _run(spec) == {"faces": "ran: its options changed"}
    again = load_alignments(tmp_path / "faces")
    assert not [f.index for f in again.frames if not f.faces]  # filled, not started over
    assert again.extra["redone_empty"][0]["frames"] == len(empty)


def test_the_shipped_example_spec_is_valid() -> None:
    spec = load_spec(Path(__file__).resolve().parents[2] / "pipelines" / "example.yaml")
    assert [s.command for s in spec.stages] == ["extract", "extract", "sort", "train", "convert"]
    model = spec.stage("model")
    assert model.outputs[0].name == "model" and "--autoclip" in model.argv
    # The faces sort renames are B's training data: train follows it.
    assert spec.stage("best_b").outputs[0] in model.inputs


def test_an_interrupted_stage_ends_the_run_unrecorded(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import click

    import faceswap.pipeline.runner as runner

    real = runner.stage_command

    @click.command(context_settings={"ignore_unknown_options": True})
    @click.argument("args", nargs=-1, type=click.UNPROCESSED)
    def pressed_ctrl_c(args: tuple[str, ...]) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(
        runner,
        "stage_command",
        lambda name: pressed_ctrl_c if name == "encode-frames" else real(name),
    )
    result = run_pipeline(RunConfig(spec=project))
    assert [(s.name, s.action) for s in result.stages] == [
        ("frames", "ran"),
        ("video", "interrupted"),
    ]
    assert list(json.loads(state_path(project).read_text())["stages"]) == ["frames"]
    cli_run = CliRunner().invoke(cli, ["run", str(project)])
    assert cli_run.exit_code == 130
    assert "video was interrupted before it finished" in cli_run.output


def test_a_start_over_cut_short_goes_on_next_time(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import click

    import faceswap.pipeline.runner as runner

    real = runner.stage_command
    calls: list[tuple[str, list[str]]] = []
    interrupt = {"extract-frames": False}

    def recording(name: str) -> click.Command:
        @click.command(context_settings={"ignore_unknown_options": True})
        @click.argument("args", nargs=-1, type=click.UNPROCESSED)
        def wrapper(args: tuple[str, ...]) -> None:
            calls.append((name, list(args)))
            real(name).main(list(args), standalone_mode=False)
            if interrupt.get(name):
                raise KeyboardInterrupt

        return wrapper

    monkeypatch.setattr(runner, "stage_command", recording)
    _run(project)
    clip = project.parent / "clip.mp4"
    os.utime(clip, ns=(clip.stat().st_atime_ns, clip.stat().st_mtime_ns + 10**9))
    interrupt["extract-frames"] = True
    assert _run(project) == {"frames": "interrupted: clip.mp4 changed"}
    assert "--overwrite" in calls[-1][1]  # it started over, and was cut short
    interrupt["extract-frames"] = False
    assert _run(project) == {"frames": "ran: it did not finish", "video": "ran: frames changed"}
    assert "--overwrite" not in calls[-2][1]  # went on from what the start over left
    assert _run(project) == {"frames": "skipped: unchanged", "video": "skipped: unchanged"}

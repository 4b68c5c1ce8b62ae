"""Model dirs and checkpoints: round trips, clear refusals, atomicity under SIGKILL."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from faceswap.errors import FaceswapError
from faceswap.faces.align import CropSpec
from faceswap.nets import build_model
from faceswap.train import checkpoint as ckpt

from .conftest import tiny_model_config

CROP = CropSpec(size=64, coverage=0.75, centering="face")


def _model(seed: int = 0, **overrides: object):
    torch.manual_seed(seed)
    return build_model(dataclasses.replace(tiny_model_config(), **overrides))


def test_save_model_round_trip(tmp_path: Path) -> None:
    model = _model()
    ckpt.save_model(tmp_path, model, crop=CROP, card={"preset": "tiny", "iteration": 7})
    loaded = ckpt.load_for_inference(tmp_path, "cpu")
    assert loaded.config == model.config
    assert loaded.crop == CROP
    assert not loaded.model.training
    assert not any(t.is_meta for t in loaded.model.state_dict().values())
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    model.eval()
    with torch.no_grad():
        assert torch.equal(loaded.model.swap(x).rgb, model.swap(x).rgb)
    card = json.loads((tmp_path / "model_card.json").read_text())
    assert card["iteration"] == 7 and card["preset"] == "tiny"
    assert card["versions"]["torch"] == torch.__version__
    assert card["weights_sha256"] == loaded.weights_sha256 == loaded.card["weights_sha256"]
    assert len(loaded.weights_sha256) == 64


def test_load_refuses_missing_and_foreign_folders(tmp_path: Path) -> None:
    with pytest.raises(FaceswapError, match="no such model folder"):
        ckpt.load_for_inference(tmp_path / "nope")
    with pytest.raises(FaceswapError, match="not a faceswap model folder"):
        ckpt.load_for_inference(tmp_path)


def test_load_refuses_weights_of_another_shape(tmp_path: Path) -> None:
    ckpt.save_model(tmp_path, _model(), crop=CROP, card={})
    # model.json of a wider model beside the narrow model's weights: another preset's files.
    wide = _model(bottleneck=48)
    (tmp_path / ckpt.MODEL_JSON).write_text(json.dumps(ckpt.model_json(wide.config, CROP)))
    with pytest.raises(FaceswapError, match="another preset or resolution"):
        ckpt.load_for_inference(tmp_path)


def test_load_refuses_corrupt_weights(tmp_path: Path) -> None:
    ckpt.save_model(tmp_path, _model(), crop=CROP, card={})
    weights = tmp_path / ckpt.WEIGHTS
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(FaceswapError, match="corrupt or unreadable"):
        ckpt.load_for_inference(tmp_path)


def test_checkpoints_keep_last_k_and_ignore_temporaries(tmp_path: Path) -> None:
    model = _model()
    opt = torch.optim.Adam(model.parameters())
    model(torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32))[0].rgb.mean().backward()
    opt.step()
    state = {"iteration": 0, "opt_g": opt.state_dict(), "rng": ckpt.capture_rng()}
    for it in (10, 20, 30, 40):
        ckpt.save_checkpoint(
            tmp_path, it, model=model, discriminator=None, state=state, meta={}, keep=2
        )
    stale = tmp_path / "checkpoints" / ".tmp-ckpt_half"
    stale.mkdir()
    assert [it for it, _ in ckpt.list_checkpoints(tmp_path)] == [30, 40]
    # Shared like any folder the user makes (not tempfile's private 0700).
    newest = ckpt.list_checkpoints(tmp_path)[-1][1]
    assert newest.stat().st_mode & 0o777 == (tmp_path / "checkpoints").stat().st_mode & 0o777
    ckpt.remove_stale_temporaries(tmp_path)
    assert not stale.exists()
    loaded = ckpt.load_checkpoint_state(ckpt.list_checkpoints(tmp_path)[-1][1])
    assert torch.equal(
        loaded["opt_g"]["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"]
    )


def test_snapshots_outlive_keep_and_roll_backs_set_newer_aside(tmp_path: Path) -> None:
    model = _model()
    state = {"iteration": 0, "rng": ckpt.capture_rng()}
    for it in range(10, 110, 10):
        ckpt.save_checkpoint(tmp_path, it, model=model, discriminator=None, state=state,
                             meta={}, keep=2, snapshot_every=40)  # fmt: skip
    assert [it for it, _ in ckpt.list_checkpoints(tmp_path)] == [40, 80, 90, 100]
    aside = ckpt.set_aside_newer(tmp_path, 40)
    assert aside == tmp_path / "checkpoints" / "abandoned_40"
    assert sorted(p.name for p in aside.iterdir()) == [
        "ckpt_000000080", "ckpt_000000090", "ckpt_000000100"
    ]  # fmt: skip
    assert [it for it, _ in ckpt.list_checkpoints(tmp_path)] == [40]
    assert ckpt.set_aside_newer(tmp_path, 40) is None  # nothing newer now
    ckpt.save_checkpoint(tmp_path, 50, model=model, discriminator=None, state=state, meta={},
                         keep=2)  # fmt: skip
    assert ckpt.set_aside_newer(tmp_path, 40) == tmp_path / "checkpoints" / "abandoned_40_2"
    ckpt.remove_stale_temporaries(tmp_path)
    assert aside.is_dir()  # set aside, never deleted


def test_rng_state_round_trip() -> None:
    import random

    import numpy as np

    state = ckpt.capture_rng()
    expected = (torch.rand(3), np.random.rand(3), random.random())
    ckpt.restore_rng(state)
    assert torch.equal(torch.rand(3), expected[0])
    assert np.array_equal(np.random.rand(3), expected[1])
    assert random.random() == expected[2]


class _Evil:
    def __reduce__(self):  # would run code if unpickled
        return (os.system, ("echo pwned",))


def test_checkpoint_state_never_unpickles_objects(tmp_path: Path) -> None:
    folder = tmp_path / "ckpt_000000001"
    folder.mkdir()
    torch.save({"iteration": 1, "payload": _Evil()}, folder / "state.pt")
    with pytest.raises(FaceswapError, match="corrupt or unsafe"):
        ckpt.load_checkpoint_state(folder)


_SAVER = textwrap.dedent(
    """
    import sys, torch
    from faceswap.train import checkpoint as ckpt
    model = torch.nn.Linear(1024, 2048)  # 8 MB of weights: saves take a while
    it = 0
    while True:
        it += 1
        ckpt.save_checkpoint(sys.argv[1], it, model=model, discriminator=None,
                             state={"iteration": it, "blob": torch.randn(1 << 20)},
                             meta={}, keep=2)
        print(it, flush=True)
    """
)


@pytest.mark.slow
def test_sigkill_during_save_leaves_last_checkpoint_loadable(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.Popen(
        [sys.executable, "-c", _SAVER, str(tmp_path)], env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        for _ in range(3):  # a few complete saves, then kill somewhere in the next one
            proc.stdout.readline()
        time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    found = ckpt.list_checkpoints(tmp_path)
    assert found, "no complete checkpoint survived"
    iteration, newest = found[-1]
    state = ckpt.load_checkpoint_state(newest)
    assert state["iteration"] == iteration
    ckpt.load_weights_into(torch.nn.Linear(1024, 2048), newest / "model.safetensors", "model")

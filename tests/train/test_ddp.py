"""Two-process DistributedDataParallel training on the CPU (gloo) under torchrun."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from safetensors.torch import load_file

from faceswap.config import config_to_dict
from faceswap.train import checkpoint as ckpt
from faceswap.train.metrics import read_metrics

from .conftest import tiny_model_config

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_two_process_gloo_ddp(face_dirs: tuple[Path, Path], tmp_path: Path) -> None:
    preset = tmp_path / "tiny32.yaml"
    preset.write_text(yaml.safe_dump(config_to_dict(tiny_model_config())))
    model = tmp_path / "m"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "--master_addr=127.0.0.1",
        f"--master_port={_free_port()}",
        "-m",
        "faceswap",
        "train",
        "--a",
        str(face_dirs[0]),
        "--b",
        str(face_dirs[1]),
        "-m",
        str(model),
        "--preset",
        str(preset),
        "--device",
        "cpu",
        "--batch-size",
        "2",
        "--iterations",
        "4",
        "--save-every",
        "2",
        "--log-every",
        "1",
        "--workers",
        "0",
        "--gan",
        "bce",
        # Per-rank sampling, colour transfer and clipping must keep the ranks in step.
        "--uniform-yaw",
        "--colour-transfer",
        "rct",
        "--clip-grad",
        "1.0",
        # A frozen part leaves DDP's gradient reduction; the warm-up changes lr per step.
        "--freeze",
        "decoder_a",
        "--lr-warmup",
        "3",
        # Learning-rate dropout must drop the same weights on both ranks.
        "--lr-dropout",
        "0.7",
        # The true-face critic is outside DDP: its gradients are averaged by hand.
        "--true-face-power",
        "0.1",
        # The style powers add a third output (A drawn as B) to DDP's forward.
        "--face-style-power",
        "0.5",
        "--bg-style-power",
        "1",
        "--no-progress",
        "--no-tensorboard",
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # Rank 0 alone reports and writes; the other rank's output has no summary line.
    assert proc.stdout.count("finished at iteration 4") == 1
    assert [it for it, _ in ckpt.list_checkpoints(model)] == [2, 4]
    card = json.loads((model / "model_card.json").read_text())
    assert card["training"]["world_size"] == 2 and card["iteration"] == 4
    rows = read_metrics(model / "metrics.csv")
    assert [r["iteration"] for r in rows] == [1, 2, 3, 4]
    assert all(r["grad_norm"] > 0 for r in rows) and all(
        "code_d_loss" in r and r["face_style"] > 0 and r["bg_style"] > 0 for r in rows
    )
    # Each save checks that both ranks hold identical model and critics' weights (the
    # run fails otherwise); the weights moved between the checkpoints and load for inference.
    first = load_file(str(model / "checkpoints" / "ckpt_000000002" / "model.safetensors"))
    last = load_file(str(model / "checkpoints" / "ckpt_000000004" / "model.safetensors"))
    assert any(not (first[k] == last[k]).all() for k in first)
    assert all((first[k] == last[k]).all() for k in first if k.startswith("decoder_a."))
    assert [r["lr"] for r in rows] == pytest.approx(
        [5e-5 / 3, 1e-4 / 3, 5e-5, 5e-5], rel=1e-5
    )  # csv: 6 digits
    ckpt.load_for_inference(model, "cpu")

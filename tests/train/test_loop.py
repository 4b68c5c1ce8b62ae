"""The training loop: learning, exact resume, GAN steps, refusals, outputs."""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import multiprocessing
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from faceswap.errors import FaceswapError
from faceswap.nets.losses import background_style_term, face_style_term
from faceswap.train import checkpoint as ckpt
from faceswap.train import ddp
from faceswap.train.augment import AugmentConfig
from faceswap.train.loop import TrainConfig, Trainer, make_adam, run_train
from faceswap.train.metrics import read_metrics

from .conftest import tiny_model_config


def _cfg(face_dirs: tuple[Path, Path], model_dir: Path, **overrides: object) -> TrainConfig:
    base = dict(
        faces_a=face_dirs[0],
        faces_b=face_dirs[1],
        model_dir=model_dir,
        model_config=tiny_model_config(),
        iterations=6,
        batch_size=4,
        lr=1e-3,
        workers=0,
        save_every=3,
        preview_every=0,
        log_every=1,
        progress=False,
        tensorboard=False,
        disc_widths=(8, 16),
    )
    base.update(overrides)
    return TrainConfig(**base)  # type: ignore[arg-type]


def step_batches(
    dirs: tuple[Path, Path], cfg: TrainConfig, n: int = 4, size: int = 32
) -> list[dict[str, torch.Tensor]]:
    """One uint8 batch of ``n`` faces per side, as the loader gives ``Trainer.step``."""
    from faceswap.train.dataset import FaceDataset, load_face_set

    batches = []
    for folder, side in zip(dirs, "AB", strict=True):
        ds = FaceDataset(load_face_set(folder, side), size, cfg.augment)
        items = [ds[(i, i)] for i in range(n)]
        batches.append({k: torch.stack([it[k] for it in items]) for k in items[0]})
    return batches


@pytest.mark.slow
@pytest.mark.parametrize("amp", [False, True], ids=["float32", "bf16"])
def test_training_lowers_the_loss_on_real_faces(
    face_dirs: tuple[Path, Path], tmp_path: Path, amp: bool
) -> None:
    # bf16 is forced so it runs on every CPU (emulated where the CPU has no native bf16).
    cfg = _cfg(face_dirs, tmp_path / "m", iterations=24, save_every=24, log_every=2, lr=2e-3)
    result = run_train(dataclasses.replace(cfg, amp=amp, amp_dtype="bf16"))
    card = json.loads((tmp_path / "m" / "model_card.json").read_text())
    assert card["training"]["amp"] == ("bfloat16" if amp else "off")
    rows = read_metrics(tmp_path / "m" / "metrics.csv")
    first = sum(r["loss"] for r in rows[:3]) / 3
    last = sum(r["loss"] for r in rows[-3:]) / 3
    assert last < 0.85 * first, (first, last)
    assert result.iteration == 24 and not result.interrupted
    assert {"loss", "loss_a", "loss_b", "ssim_a", "l1_b"} <= set(result.losses)
    assert rows[-1]["examples_per_s"] > 0


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "model.safetensors"))


@pytest.mark.slow
@pytest.mark.parametrize(
    ("gan", "amp", "extra"),
    [
        ("off", False, {}),
        ("wgan-gp", False, {}),
        ("off", True, {}),
        ("off", False, {"lr_dropout": 0.7}),
        ("off", False, {"autoclip": True, "autoclip_percentile": 50.0}),
        ("off", False, {"optimizer": "adabelief"}),
        ("off", False, {"true_face_power": 0.5}),  # the critic and its Adam resume too
        # the style terms' extra pass; each sample's landmark-warp partner from its seed
        ("off", False, {"face_style_power": 0.5, "bg_style_power": 1.0}),
        ("off", False, {"augment": AugmentConfig(warp_to_landmarks=True)}),
    ],
)
def test_resume_reproduces_the_uninterrupted_run(
    face_dirs: tuple[Path, Path], tmp_path: Path, gan: str, amp: bool, extra: dict
) -> None:
    # bf16 forced: runs on every CPU
    extra = {"gan": gan, "amp": amp, "amp_dtype": "bf16", **extra}
    straight = run_train(_cfg(face_dirs, tmp_path / "straight", **extra))
    run_train(_cfg(face_dirs, tmp_path / "split", iterations=3, **extra))
    resumed = run_train(_cfg(face_dirs, tmp_path / "split", resume=True, **extra))
    assert resumed.start_iteration == 3 and resumed.iteration == 6
    a, b = _weights(straight.checkpoint), _weights(resumed.checkpoint)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    if gan != "off":
        da = load_file(str(straight.checkpoint / "disc.safetensors"))
        db = load_file(str(resumed.checkpoint / "disc.safetensors"))
        assert all(torch.equal(da[k], db[k]) for k in da)
    # The metrics file of the resumed run has each iteration once.
    iters = [r["iteration"] for r in read_metrics(tmp_path / "split" / "metrics.csv")]
    assert iters == [1, 2, 3, 4, 5, 6]


def test_init_from_starts_a_new_model_from_trained_weights(
    face_dirs: tuple[Path, Path], tmp_path: Path
) -> None:
    import dataclasses

    from faceswap.train import checkpoint as ckpt

    trained = tmp_path / "trained"
    run_train(_cfg(face_dirs, trained, iterations=3))
    source = _weights(trained)
    new = run_train(_cfg(face_dirs, tmp_path / "new", iterations=1, init_from=trained, lr=1e-9))
    assert new.start_iteration == 0 and new.iteration == 1
    after = _weights(tmp_path / "new")
    # One step at a vanishing learning rate: the trained weights, not a fresh init.
    assert all(torch.allclose(after[k], source[k], atol=1e-6) for k in source)
    card = ckpt.read_card(tmp_path / "new")
    assert card["initialised_from"]["model"] == "trained"
    assert card["initialised_from"]["parts"] == "all"
    run_train(_cfg(face_dirs, tmp_path / "new", iterations=2, resume=True))
    assert ckpt.read_card(tmp_path / "new")["initialised_from"] == card["initialised_from"]
    # The encoder only: a preset with other decoders takes the shared encoder.
    wider = dataclasses.replace(tiny_model_config(), learned_mask=True)
    cfg = _cfg(face_dirs, tmp_path / "enc", init_from=trained, init_parts="encoder",
               model_config=wider, iterations=1, lr=1e-9)  # fmt: skip
    run_train(cfg)
    enc = _weights(tmp_path / "enc")
    assert all(
        torch.allclose(enc[k], source[k], atol=1e-6) for k in source if k.startswith("encoder.")
    )
    assert any(enc[k].shape != source[k].shape for k in enc)  # a 4-channel output head
    with pytest.raises(FaceswapError, match=r"has other shapes.*--init-parts encoder"):
        run_train(_cfg(face_dirs, tmp_path / "all", init_from=trained, model_config=wider))
    with pytest.raises(FaceswapError, match="drop one of them"):
        _cfg(face_dirs, tmp_path / "new", init_from=trained, resume=True)
    with pytest.raises(FaceswapError, match="not a faceswap model folder"):
        run_train(_cfg(face_dirs, tmp_path / "x", init_from=tmp_path / "nowhere"))


def test_save_minutes_checkpoints_by_time_and_resumes_exactly(
    face_dirs: tuple[Path, Path], tmp_path: Path
) -> None:
    from faceswap.train import checkpoint as ckpt

    # Far more than 1e-9 minutes pass in a step: a checkpoint after every one.
    timed = tmp_path / "timed"
    run_train(_cfg(face_dirs, timed, iterations=4, save_every=100, keep=10, save_minutes=1e-9))
    assert [it for it, _ in ckpt.list_checkpoints(timed)] == [1, 2, 3, 4]
    previews = sorted(p.name for p in (timed / "previews").iterdir())
    assert previews == [f"preview_{i:09d}.png" for i in (1, 2, 3, 4)]  # a preview with each
    untimed = tmp_path / "untimed"
    run_train(_cfg(face_dirs, untimed, iterations=4, save_every=100, keep=10, save_minutes=0))
    assert [it for it, _ in ckpt.list_checkpoints(untimed)] == [4]  # only the last
    # A run resumed from a checkpoint the clock made is the uninterrupted run.
    again = run_train(_cfg(face_dirs, timed, resume_from=2, iterations=4, save_minutes=0))
    a, b = _weights(untimed), _weights(again.checkpoint)
    assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(FaceswapError, match="--save-minutes must be >= 0"):
        _cfg(face_dirs, timed, save_minutes=-1)


def test_resume_from_rolls_back_to_an_older_checkpoint(
    face_dirs: tuple[Path, Path], tmp_path: Path
) -> None:
    straight = run_train(_cfg(face_dirs, tmp_path / "straight", iterations=4, save_every=2))
    run_train(_cfg(face_dirs, tmp_path / "m", save_every=2, keep=1, snapshot_every=2))
    with pytest.raises(FaceswapError, match="no checkpoint of iteration 3; it has 2, 4, 6"):
        run_train(_cfg(face_dirs, tmp_path / "m", resume_from=3, iterations=4))
    again = run_train(_cfg(face_dirs, tmp_path / "m", resume_from=2, iterations=4, save_every=2))
    assert again.start_iteration == 2 and again.iteration == 4
    a, b = _weights(straight.checkpoint), _weights(again.checkpoint)
    assert all(torch.equal(a[k], b[k]) for k in a)  # as if 5 and 6 never happened
    assert (tmp_path / "m" / "checkpoints" / "abandoned_2" / "ckpt_000000006").is_dir()
    iters = [r["iteration"] for r in read_metrics(tmp_path / "m" / "metrics.csv")]
    assert iters == [1, 2, 3, 4]


def test_a_damaged_newest_checkpoint_names_the_older_ones(
    face_dirs: tuple[Path, Path], tmp_path: Path
) -> None:
    run_train(_cfg(face_dirs, tmp_path / "m", iterations=4, save_every=2))
    (tmp_path / "m" / "checkpoints" / "ckpt_000000004" / "model.safetensors").write_text("x")
    with pytest.raises(FaceswapError, match=r"corrupt .* --resume-from 2 \(this folder has 2\)"):
        run_train(_cfg(face_dirs, tmp_path / "m", resume=True, iterations=6, save_every=2))
    again = run_train(_cfg(face_dirs, tmp_path / "m", resume_from=2, iterations=6, save_every=2))
    assert again.start_iteration == 2 and again.iteration == 6


@pytest.mark.parametrize("amp", [False, True], ids=["float32", "bf16"])
@pytest.mark.parametrize("mode", ["bce", "hinge", "wgan-gp"])
def test_gan_modes_run_one_step(
    face_dirs: tuple[Path, Path], tmp_path: Path, mode: str, amp: bool
) -> None:
    cfg = _cfg(face_dirs, tmp_path, gan=mode, gan_weight=0.5, amp=amp, amp_dtype="bf16")
    trainer = Trainer(cfg, tiny_model_config(), torch.device("cpu"), ddp.DistInfo())
    assert trainer.amp_dtype == (torch.bfloat16 if amp else None)
    batches = step_batches(face_dirs, cfg)
    disc_before = [p.detach().clone() for p in trainer.disc.parameters()]
    parts = trainer.step(0, *batches)
    assert {"loss", "g_adv", "d_loss"} <= set(parts)
    assert ("gp" in parts) == (mode == "wgan-gp")
    assert all(torch.isfinite(v) for v in parts.values())
    changed = [
        not torch.equal(a, b) for a, b in zip(disc_before, trainer.disc.parameters(), strict=True)
    ]
    assert any(changed)


def test_the_gan_mode_may_change_between_runs(
    face_dirs: tuple[Path, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """bce and hinge share a discriminator, which goes on; wgan-gp's critic has another norm
    and starts afresh with a warning, while the autoencoder resumes."""
    m = tmp_path / "m"
    run_train(_cfg(face_dirs, m, iterations=2, save_every=2, gan="hinge"))
    first = ckpt.list_checkpoints(m)[-1][1]
    cpu, info = torch.device("cpu"), ddp.DistInfo()
    bce = Trainer(_cfg(face_dirs, m, gan="bce"), tiny_model_config(), cpu, info)
    with caplog.at_level("INFO"):
        assert bce.load(first) == 2
    assert "the discriminator of --gan hinge goes on under --gan bce" in caplog.text
    saved = load_file(str(first / "disc.safetensors"))
    assert all(torch.equal(v, bce.disc.state_dict()[k]) for k, v in saved.items())
    caplog.clear()
    with caplog.at_level("WARNING"):
        result = run_train(_cfg(face_dirs, m, iterations=4, save_every=2, gan="wgan-gp",
                                resume=True))  # fmt: skip
    assert result.start_iteration == 2 and result.iteration == 4
    assert (
        "its discriminator (--gan hinge: spectral norm, widths 8,16) is not the one --gan "
        "wgan-gp builds (instance norm, widths 8,16): the GAN starts from scratch"
    ) in caplog.text
    # A checkpoint whose build is not recorded (older runs): the weights' shapes tell.
    folder = ckpt.list_checkpoints(m)[-1][1]
    state = ckpt.load_checkpoint_state(folder)
    del state["disc"]
    wide = Trainer(_cfg(face_dirs, m, gan="wgan-gp", disc_widths=(8, 32)), tiny_model_config(),
                   cpu, info)  # fmt: skip
    before = {k: v.clone() for k, v in wide.disc.state_dict().items()}
    caplog.clear()
    with caplog.at_level("WARNING"):
        wide._load_disc(folder, state)
    assert "its discriminator is of another --gan, --gan-widths or --gan-norm" in caplog.text
    assert all(torch.equal(v, wide.disc.state_dict()[k]) for k, v in before.items())
    same = Trainer(_cfg(face_dirs, m, gan="wgan-gp"), tiny_model_config(), cpu, info)
    same._load_disc(folder, state)
    saved = load_file(str(folder / "disc.safetensors"))
    assert all(torch.equal(v, same.disc.state_dict()[k]) for k, v in saved.items())


def test_true_face_trains_its_critic_and_pushes_only_the_encoder(
    face_dirs: tuple[Path, Path], tmp_path: Path
) -> None:
    cpu, info = torch.device("cpu"), ddp.DistInfo()
    plain = Trainer(_cfg(face_dirs, tmp_path), tiny_model_config(), cpu, info)
    cfg = _cfg(face_dirs, tmp_path, true_face_power=5.0)
    trainer = Trainer(cfg, tiny_model_config(), cpu, info)
    assert plain.code_disc is None and trainer.code_disc is not None
    batches = step_batches(face_dirs, cfg)
    critic_before = [p.detach().clone() for p in trainer.code_disc.parameters()]
    parts = trainer.step(0, *batches)
    plain.step(0, *batches)
    assert {"true_face", "code_d_loss"} <= set(parts)
    assert all(torch.isfinite(v) for v in parts.values())
    # the critic starts unsure: ln 2 for B's codes, 2 ln 2 for both sides' sum
    assert abs(parts["true_face"].item() - 0.693) < 0.1
    after = trainer.code_disc.parameters()
    assert any(not torch.equal(a, b) for a, b in zip(critic_before, after, strict=True))
    # The term reads only the codes: one step moves the encoder otherwise, the decoders not
    # at all (the same seed, batch and reconstruction gradients).
    moved, same = plain.model.state_dict(), trainer.model.state_dict()
    assert any(not torch.equal(moved[k], same[k]) for k in moved if k.startswith("encoder."))
    assert all(torch.equal(moved[k], same[k]) for k in moved if k.startswith("decoder_"))


@pytest.mark.parametrize(
    ("arch", "option", "moves"),
    [
        # face style: the codes held, only the decoder that draws B moves
        ("df", "face_style_power", {"decoder_b"}),
        ("liae", "face_style_power", {"decoder"}),
        # background style: everything that drew the swap, never A's own decoder
        ("df", "bg_style_power", {"encoder", "decoder_b"}),
        ("liae", "bg_style_power", {"encoder", "inter_ab", "inter_b", "decoder"}),
    ],
)
def test_style_powers_move_only_what_draws_the_swap(
    face_dirs: tuple[Path, Path], tmp_path: Path, arch: str, option: str, moves: set[str]
) -> None:
    cpu, info = torch.device("cpu"), ddp.DistInfo()
    model_config = dataclasses.replace(tiny_model_config(), arch=arch)
    plain = Trainer(_cfg(face_dirs, tmp_path), model_config, cpu, info)
    styled = Trainer(_cfg(face_dirs, tmp_path, **{option: 5.0}), model_config, cpu, info)
    batches = step_batches(face_dirs, plain.cfg)
    parts = styled.step(0, *batches)
    plain_parts = plain.step(0, *batches)
    term = option.replace("_power", "")
    assert term in parts and term not in plain_parts and parts[term] > 0
    assert all(torch.isfinite(v) for v in parts.values())
    weight = 500.0 if term == "face_style" else 0.5  # DFL's: 100 * power, power / 10
    expected = plain_parts["loss"].item() + weight * parts[term].item()
    assert parts["loss"].item() == pytest.approx(expected, rel=1e-5)
    # the same seed, batch and reconstruction gradients: only the term's path differs
    before, after = plain.model.state_dict(), styled.model.state_dict()
    assert {k.split(".")[0] for k in before if not torch.equal(before[k], after[k])} == moves


def test_both_style_powers_in_one_step(face_dirs: tuple[Path, Path], tmp_path: Path) -> None:
    cfg = _cfg(face_dirs, tmp_path, face_style_power=0.1, bg_style_power=1.0, amp=True,
               amp_dtype="bf16")  # fmt: skip
    trainer = Trainer(cfg, tiny_model_config(), torch.device("cpu"), ddp.DistInfo())
    parts = trainer.step(0, *step_batches(face_dirs, cfg))
    assert {"face_style", "bg_style"} <= set(parts)
    assert all(torch.isfinite(v) for v in parts.values())


@pytest.mark.parametrize(
    ("option", "power", "ratio"),
    # measured (a tiny model, 40 steps): face style 0.0051 -> 0.0003, background at DFL's
    # highest power 0.117 -> 0.062
    [("face_style_power", 1.0, 0.2), ("bg_style_power", 100.0, 0.7)],
)
def test_style_powers_pull_the_swap_toward_a(
    face_dirs: tuple[Path, Path], tmp_path: Path, option: str, power: float, ratio: float
) -> None:
    # After the same steps, A's faces drawn as B are nearer A's colours (face style) or
    # A's background (background style) than without the term.
    cpu, info = torch.device("cpu"), ddp.DistInfo()
    runs = {}
    for value in (0.0, power):
        trainer = Trainer(_cfg(face_dirs, tmp_path, **{option: value}), tiny_model_config(),
                          cpu, info)  # fmt: skip
        batches = step_batches(face_dirs, trainer.cfg)
        for it in range(40):
            trainer.step(it, *batches)
        trainer.model.eval()
        a = trainer._prepare(batches[0])
        with torch.no_grad():
            swap = trainer.model.swap(a["source"], "a2b").rgb
            if option == "face_style_power":
                own = trainer.model.decode(trainer.model.encode(a["source"]), "a").rgb
                runs[value] = face_style_term(swap, own, a["mask"]).item()
            else:
                runs[value] = background_style_term(swap, a["target"], a["mask"]).item()
    assert runs[power] < ratio * runs[0.0]


def test_blur_out_background_smooths_only_the_background() -> None:
    from faceswap.train.augment import blur_out_background

    gen = torch.Generator().manual_seed(0)
    yy, xx = torch.meshgrid(torch.arange(64), torch.arange(64), indexing="ij")
    face = ((yy - 32) ** 2 + (xx - 32) ** 2 < 16**2).float()[None, None]
    mask = face.expand(2, 1, 64, 64)
    background = torch.rand(2, 3, 64, 64, generator=gen) * 0.5  # noise in [0, 0.5]
    images = mask * 1.0 + (1 - mask) * background  # the face is white
    out = blur_out_background(images, mask, sigma=2.0)
    inside, outside = mask.expand_as(images) > 0.5, mask.expand_as(images) < 0.5
    assert torch.equal(out[inside], images[inside])  # the face exactly as it was
    assert out[outside].std() < 0.5 * images[outside].std()  # the noise smoothed
    # no white runs out of the face: the background stays in its own range
    assert out[outside].max() <= 0.5 + 1e-5
    torch.testing.assert_close(out[outside].mean(), images[outside].mean(), atol=0.01, rtol=0)
    flat = blur_out_background(torch.full((1, 3, 32, 32), 0.3), mask[:1, :, :32, :32], 1.0)
    torch.testing.assert_close(flat, torch.full_like(flat, 0.3))  # nothing to smooth


def test_blur_out_mask_changes_the_targets_only(
    face_dirs: tuple[Path, Path], tmp_path: Path
) -> None:
    cpu, info = torch.device("cpu"), ddp.DistInfo()
    plain = Trainer(_cfg(face_dirs, tmp_path), tiny_model_config(), cpu, info)
    blurred = Trainer(_cfg(face_dirs, tmp_path, blur_out_mask=True), tiny_model_config(), cpu,
                      info)  # fmt: skip
    batch = step_batches(face_dirs, plain.cfg)[0]
    a, b = plain._prepare(batch), blurred._prepare(batch)
    assert torch.equal(a["source"], b["source"]) and torch.equal(a["mask"], b["mask"])
    face = (a["mask"] > 0.999).expand_as(a["target"])
    assert torch.equal(a["target"][face], b["target"][face])
    assert not torch.equal(a["target"][~face], b["target"][~face])


def test_no_flip_b_flips_only_a(face_dirs: tuple[Path, Path], tmp_path: Path) -> None:
    from faceswap.train.augment import AugmentConfig
    from faceswap.train.dataset import FaceDataset, load_face_set

    still = AugmentConfig(flip=False, rotation=0, zoom=0, shift=0, warp=False, colour=False,
                          blur=False)  # fmt: skip
    cfg = _cfg(face_dirs, tmp_path, flip_b=False,
               augment=dataclasses.replace(still, flip=True))  # fmt: skip
    faces = load_face_set(face_dirs[1], "B")
    plain = FaceDataset(faces, 32, still)
    sides = {side: FaceDataset(faces, 32, cfg.side_augment(side)) for side in "ab"}
    keys = [(i % len(faces), seed) for i, seed in enumerate(range(16))]
    mirrored = {
        side: sum(not torch.equal(ds[k]["target"], plain[k]["target"]) for k in keys)
        for side, ds in sides.items()
    }
    assert mirrored["b"] == 0 and mirrored["a"] > 0
    assert _cfg(face_dirs, tmp_path).side_augment("b").flip  # both sides by default


def test_true_face_needs_a_df_preset_and_eager_mode(
    face_dirs: tuple[Path, Path], tmp_path: Path
) -> None:
    import dataclasses

    liae = dataclasses.replace(tiny_model_config(), arch="liae")
    with pytest.raises(FaceswapError, match="needs a df preset"):
        Trainer(_cfg(face_dirs, tmp_path, true_face_power=0.01), liae, torch.device("cpu"),
                ddp.DistInfo())  # fmt: skip
    with pytest.raises(FaceswapError, match="drop one"):
        _cfg(face_dirs, tmp_path, true_face_power=0.01, compile=True)
    with pytest.raises(FaceswapError, match="must be >= 0"):
        _cfg(face_dirs, tmp_path, true_face_power=-1.0)
    for name in ("face_style_power", "bg_style_power"):
        for value in (-0.5, 101.0):
            with pytest.raises(FaceswapError, match=f"--{name.replace('_', '-')} must be in"):
                _cfg(face_dirs, tmp_path, **{name: value})


@pytest.mark.parametrize(
    ("option", "frozen", "warning"),
    [
        ("true_face_power", "encoder", "moves only the encoder, which --freeze keeps fixed"),
        ("face_style_power", "decoder_b", "moves only decoder_b, which --freeze keeps fixed"),
    ],
)
def test_a_term_on_a_frozen_part_is_named(
    face_dirs: tuple[Path, Path],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    option: str,
    frozen: str,
    warning: str,
) -> None:
    cfg = _cfg(face_dirs, tmp_path, freeze=frozen, **{option: 0.01})
    with caplog.at_level("WARNING"):
        Trainer(cfg, tiny_model_config(), torch.device("cpu"), ddp.DistInfo())
    assert warning in caplog.text and "changes nothing in this run" in caplog.text


def test_clip_grad_bounds_the_gradient_norm(face_dirs: tuple[Path, Path], tmp_path: Path) -> None:
    def grad_norm(trainer: Trainer) -> float:
        grads = [p.grad for p in trainer.model.parameters() if p.grad is not None]
        return float(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads])))

    torch.manual_seed(0)
    free = Trainer(_cfg(face_dirs, tmp_path), tiny_model_config(), torch.device("cpu"),
                   ddp.DistInfo())  # fmt: skip
    batches = step_batches(face_dirs, free.cfg)
    assert "grad_norm" not in free.step(0, *batches)
    unclipped = grad_norm(free)
    torch.manual_seed(0)
    cfg = _cfg(face_dirs, tmp_path, clip_grad=unclipped / 10)
    clipped = Trainer(cfg, tiny_model_config(), torch.device("cpu"), ddp.DistInfo())
    parts = clipped.step(0, *batches)
    assert float(parts["grad_norm"]) == pytest.approx(unclipped, rel=1e-4)  # before clipping
    assert grad_norm(clipped) == pytest.approx(unclipped / 10, rel=1e-3)
    with pytest.raises(FaceswapError, match="--clip-grad"):
        _cfg(face_dirs, tmp_path, clip_grad=-1.0)


def test_autoclip_cuts_a_spike_to_the_usual_norm(
    face_dirs: tuple[Path, Path], tmp_path: Path
) -> None:
    from faceswap.train.loop import AutoClip

    torch.manual_seed(0)
    params = [torch.nn.Parameter(torch.zeros(50)) for _ in range(2)]
    clip = AutoClip(10.0, torch.device("cpu"))
    norms = []
    for scale in [1.0] * 20 + [100.0]:
        for p in params:
            p.grad = torch.randn(50) * scale
        norm, threshold = clip(params)
        norms.append(float(norm))
    after = float(torch.nn.utils.get_total_norm([p.grad for p in params]))
    assert norms[-1] > 50 * max(norms[:-1])  # the spike
    assert after == pytest.approx(float(threshold), rel=1e-4)
    assert after == pytest.approx(float(np.quantile(norms, 0.1)), rel=1e-4)  # 10th percentile
    restored = AutoClip(10.0, torch.device("cpu"))
    restored.load(clip.state())
    assert restored.count == 21 and torch.equal(restored.norms, clip.norms)
    # In training: logged, and refused together with a fixed clip.
    result = run_train(_cfg(face_dirs, tmp_path / "m", iterations=3, autoclip=True))
    rows = read_metrics(tmp_path / "m" / "metrics.csv")
    assert all(r["clip"] > 0 for r in rows)
    assert rows[0]["clip"] == pytest.approx(rows[0]["grad_norm"], rel=1e-5)  # one norm seen
    assert result.iteration == 3
    with pytest.raises(FaceswapError, match="--autoclip and --clip-grad both clip"):
        _cfg(face_dirs, tmp_path, autoclip=True, clip_grad=1.0)
    with pytest.raises(FaceswapError, match="--autoclip-percentile"):
        _cfg(face_dirs, tmp_path, autoclip=True, autoclip_percentile=0)


def test_freeze_keeps_a_part_fixed_and_resumes_either_way(
    face_dirs: tuple[Path, Path], tmp_path: Path
) -> None:
    from faceswap.train import checkpoint as ckpt

    trained = tmp_path / "trained"
    run_train(_cfg(face_dirs, trained, iterations=2))
    source = _weights(trained)
    model = tmp_path / "frozen"
    run_train(_cfg(face_dirs, model, iterations=3, init_from=trained, freeze="encoder"))
    after = _weights(model)
    for key in source:
        if key.startswith("encoder."):
            assert torch.equal(after[key], source[key]), key  # bit for bit
    assert any(not torch.equal(after[k], source[k]) for k in source if k.startswith("decoder_b."))
    assert ckpt.read_card(model)["training"]["freeze"] == ["encoder"]
    # Unfrozen on resume, the encoder learns again from the same checkpoint.
    run_train(_cfg(face_dirs, model, iterations=5, resume=True))
    resumed = _weights(model)
    assert any(not torch.equal(resumed[k], source[k]) for k in source if k.startswith("encoder."))
    with pytest.raises(FaceswapError, match=r"no part of that name; its parts are encoder, "):
        run_train(_cfg(face_dirs, tmp_path / "x", freeze="inter_ab"))
    with pytest.raises(FaceswapError, match="nothing would train"):
        run_train(_cfg(face_dirs, tmp_path / "y", freeze=["encoder", "decoder_a", "decoder_b"]))


def test_lr_warmup_ramps_the_learning_rate_by_model_iteration(
    face_dirs: tuple[Path, Path], tmp_path: Path
) -> None:
    from faceswap.train.loop import warmup_factor

    assert [warmup_factor(i, 4) for i in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    assert warmup_factor(0, 0) == 1.0
    model = tmp_path / "m"
    run_train(_cfg(face_dirs, model, iterations=3, lr_warmup=4, lr=1e-3))
    run_train(_cfg(face_dirs, model, iterations=6, lr_warmup=4, lr=1e-3, resume=True))
    lrs = [r["lr"] for r in read_metrics(model / "metrics.csv")]
    assert lrs == pytest.approx([2.5e-4, 5e-4, 7.5e-4, 1e-3, 1e-3, 1e-3])
    with pytest.raises(FaceswapError, match="--lr-warmup"):
        _cfg(face_dirs, model, lr_warmup=-1)
    # The optimiser really steps at that rate: Adam's first step moves each weight by about
    # the learning rate, so a quarter of the rate moves the weights a quarter as far.
    moves = []
    for warmup in (0, 4):
        torch.manual_seed(0)
        cfg = _cfg(face_dirs, model, lr_warmup=warmup, lr=1e-3)
        trainer = Trainer(cfg, tiny_model_config(), torch.device("cpu"), ddp.DistInfo())
        before = [p.detach().clone() for p in trainer.model.parameters()]
        trainer.step(0, *step_batches(face_dirs, cfg))
        after = trainer.model.parameters()
        moves.append(
            sum(float((p.detach() - b).abs().sum()) for p, b in zip(after, before, strict=True))
        )
    assert moves[1] / moves[0] == pytest.approx(0.25, rel=0.05)


def test_lr_dropout_keeps_a_share_of_each_update(
    face_dirs: tuple[Path, Path], tmp_path: Path
) -> None:
    from faceswap.train.loop import keep_mask

    def draw(seed: int) -> torch.Tensor:
        return keep_mask(200_003, 0.3, torch.Generator().manual_seed(seed))

    mask = draw(0)
    assert mask.shape == (200_003,) and mask.dtype == torch.bool
    assert float(mask.float().mean()) == pytest.approx(77 / 256, abs=0.005)
    assert torch.equal(mask, draw(0)) and not torch.equal(mask, draw(1))
    # Each of the 7 bytes cut from a random word is uniform (the word's 8th is not).
    by_byte = mask[: 200_003 // 7 * 7].view(-1, 7).float().mean(0)
    assert torch.allclose(by_byte, torch.full_like(by_byte, 77 / 256), atol=0.01), by_byte
    # Neighbouring draws are independent: a byte's pair with the next one is kept as often
    # as two independent draws would be.
    both = float((mask[:-1] & mask[1:]).float().mean())
    assert both == pytest.approx((77 / 256) ** 2, abs=0.005)

    # One step with and without dropout from the same weights and batches: each weight
    # either took the full step's value or kept its old one, about 70 % the old one.
    steps = []
    for drop in (0.0, 0.7):
        torch.manual_seed(0)
        cfg = _cfg(face_dirs, tmp_path, lr_dropout=drop)
        trainer = Trainer(cfg, tiny_model_config(), torch.device("cpu"), ddp.DistInfo())
        before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
        trainer.step(0, *step_batches(face_dirs, cfg))
        steps.append(trainer.model.state_dict())
    full, dropped = steps
    moved = kept_old = 0
    for key, old in before.items():
        changed = full[key] != old
        assert torch.equal(dropped[key], torch.where(dropped[key] == old, old, full[key])), key
        moved += int(changed.sum())
        kept_old += int((changed & (dropped[key] == old)).sum())
    assert moved > 10_000 and kept_old / moved == pytest.approx(179 / 256, abs=0.01)
    for bad in (1.0, -0.1):
        with pytest.raises(FaceswapError, match="--lr-dropout"):
            _cfg(face_dirs, tmp_path, lr_dropout=bad)


def test_outputs_card_preview_and_inference_model(
    face_dirs: tuple[Path, Path], tmp_path: Path
) -> None:
    cfg = _cfg(
        face_dirs,
        tmp_path / "m",
        iterations=4,
        save_every=2,
        keep=1,
        preview_every=2,
        preview_faces=3,
        model_config=tiny_model_config(learned_mask=True),
    )
    result = run_train(cfg)
    m = tmp_path / "m"
    assert [it for it, _ in ckpt.list_checkpoints(m)] == [4]
    card = json.loads((m / "model_card.json").read_text())
    assert card["iteration"] == 4 and card["preset"] == "tiny"
    assert card["data"]["a"]["faces"] == 10 and card["data"]["b"]["folder"] == str(face_dirs[1])
    assert card["crop"]["size"] == 64 and "torch" in card["versions"]
    assert "mask_a" in result.losses  # the learned mask is trained on the hull mask
    preview = cv2.imread(str(m / "previews" / "preview_000000002.png"))
    assert preview.shape == (3 * 32, 10 * 32 + 2, 3)  # a learned mask adds its columns
    for column in (2, 4):  # mask A→A and mask A→B: grey
        mask_column = preview[:, column * 32 : (column + 1) * 32]
        assert (mask_column[..., 0] == mask_column[..., 1]).all()
    assert cv2.imread(str(m / "loss.png")).shape == (420, 720, 3)  # the loss history
    from faceswap.provenance import read_provenance

    for grid in (m / "preview.png", m / "previews" / "preview_000000002.png"):
        assert read_provenance(grid)["synthetic"] == "1"  # its swap columns are synthetic
    loaded = ckpt.load_for_inference(m, "cpu")
    assert loaded.config.learned_mask and loaded.crop.size == 64
    out = loaded.model.swap(torch.rand(1, 3, 32, 32))
    assert out.mask is not None and out.rgb.shape == (1, 3, 32, 32)
    saved = json.loads((m / "train_config.json").read_text())
    assert saved["batch_size"] == 4 and saved["augment"]["warp"] is True


def test_refuses_to_clobber_or_mix_models(face_dirs: tuple[Path, Path], tmp_path: Path) -> None:
    m = tmp_path / "m"
    with pytest.raises(FaceswapError, match="no checkpoint to resume"):
        run_train(_cfg(face_dirs, m, resume=True))
    run_train(_cfg(face_dirs, m, iterations=1, save_every=1))
    with pytest.raises(FaceswapError, match="already holds a trained model"):
        run_train(_cfg(face_dirs, m, iterations=1))
    other = dataclasses.replace(tiny_model_config(), bottleneck=48)
    with pytest.raises(FaceswapError, match="resume with the same"):
        run_train(_cfg(face_dirs, m, iterations=2, resume=True, model_config=other))


def test_the_model_folder_is_not_a_faces_folder(
    face_dirs: tuple[Path, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    before = sorted(p.name for p in face_dirs[1].iterdir())
    with pytest.raises(FaceswapError) as err:
        run_train(_cfg(face_dirs, face_dirs[1]))
    assert str(err.value) == (
        f"-m {face_dirs[1]} is the faces folder of --b; give the model a folder of its own "
        "(e.g. -m model)"
    )
    other = shutil.copytree(face_dirs[0], tmp_path / "other_faces")
    with pytest.raises(FaceswapError, match=r"holds an alignments\.json, so it is a faces"):
        run_train(_cfg(face_dirs, other))
    assert sorted(p.name for p in face_dirs[1].iterdir()) == before  # nothing written there
    with caplog.at_level("WARNING"):
        run_train(_cfg((face_dirs[0], face_dirs[0]), tmp_path / "m", iterations=1))
    assert "--a and --b share faces" in caplog.text and "swaps nobody" in caplog.text


def test_out_of_memory_is_one_clear_line_and_the_folder_starts_over(
    face_dirs: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from faceswap.device import is_out_of_memory

    def exhausted(self: Trainer, *args: object) -> None:
        torch.empty(2**50)  # the CPU allocator's own failure, 4 PiB

    m = tmp_path / "m"
    with monkeypatch.context() as patch:
        patch.setattr(Trainer, "step", exhausted)
        with pytest.raises(FaceswapError) as err:
            run_train(_cfg(face_dirs, m, batch_size=4))
    assert str(err.value) == (
        "out of host memory on cpu at --batch-size 4; rerun with --batch-size 2, add --amp, "
        "or use a smaller --preset (`faceswap presets` estimates their memory)"
    )
    # The untrained model that run left does not block a new start, even of another shape.
    other = dataclasses.replace(tiny_model_config(), bottleneck=48)
    result = run_train(_cfg(face_dirs, m, batch_size=2, iterations=2, model_config=other))
    assert result.iteration == 2
    assert is_out_of_memory(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate"))
    assert not is_out_of_memory(RuntimeError("mat1 and mat2 shapes cannot be multiplied"))


def test_refuses_differently_framed_sides(face_dirs: tuple[Path, Path], tmp_path: Path) -> None:
    import shutil

    other = tmp_path / "b_head"
    shutil.copytree(face_dirs[1], other)
    data = json.loads((other / "alignments.json").read_text())
    data["crop"]["centering"] = "head"
    (other / "alignments.json").write_text(json.dumps(data))
    with pytest.raises(FaceswapError, match="re-extract one side"):
        run_train(_cfg((face_dirs[0], other), tmp_path / "m"))


def test_bad_options_are_clear(face_dirs: tuple[Path, Path], tmp_path: Path) -> None:
    with pytest.raises(FaceswapError, match="batch-size"):
        _cfg(face_dirs, tmp_path, batch_size=0)
    with pytest.raises(FaceswapError, match="unknown GAN mode 'lsgan'; choose from"):
        run_train(_cfg(face_dirs, tmp_path / "m", gan="lsgan"))
    with pytest.raises(FaceswapError, match="unknown loss 'ms'"):
        run_train(_cfg(face_dirs, tmp_path / "m2", loss="ms:1"))
    assert not (tmp_path / "m").exists() and not (tmp_path / "m2").exists()  # nothing made
    with pytest.raises(FaceswapError, match=r"--preview-faces must be in \[1, 64\]"):
        _cfg(face_dirs, tmp_path, preview_faces=0)


@pytest.mark.slow
def test_unreadable_face_in_a_worker_is_one_clear_line(
    face_dirs: tuple[Path, Path], tmp_path: Path
) -> None:
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(face_dirs[0], broken)
    # Header intact (the size checks pass), pixels garbage; faces 0, 3, 6, 9 stay readable
    # because the preview reads them in the main process: the others fail in the worker.
    for i in (1, 2, 4, 5, 7, 8):
        png = broken / f"frame_{i:06d}_0.png"
        png.write_bytes(png.read_bytes()[:40] + b"\0" * 64)
    cfg = _cfg((broken, face_dirs[1]), tmp_path / "m", workers=1, iterations=1)
    with pytest.raises(FaceswapError) as info:
        run_train(cfg)
    message = str(info.value)
    assert "\n" not in message and "unreadable image" in message and "Traceback" not in message
    # The traceback (still held here) must not keep the workers alive: multiprocessing would
    # wait on them when the interpreter exits.
    assert multiprocessing.active_children() == []


@pytest.mark.slow
def test_worker_processes_give_the_same_run(face_dirs: tuple[Path, Path], tmp_path: Path) -> None:
    inline = run_train(_cfg(face_dirs, tmp_path / "inline", iterations=2, save_every=2))
    assert inline.it_per_s > 0  # too short for the warm-up window, still a rate
    workers = run_train(
        _cfg(face_dirs, tmp_path / "workers", iterations=2, save_every=2, workers=1)
    )
    a, b = _weights(inline.checkpoint), _weights(workers.checkpoint)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert multiprocessing.active_children() == []
    assert (inline.workers, workers.workers) == (0, 1)


def test_the_run_reports_how_long_it_waited_for_data(
    face_dirs: tuple[Path, Path], tmp_path: Path
) -> None:
    # Inline loading (no workers) makes every step wait for its own augmentation.
    result = run_train(_cfg(face_dirs, tmp_path / "m", iterations=8, save_every=8))
    assert 0.0 < result.data_wait < 1.0


def test_fused_adam_matches_the_stock_one_and_reads_its_checkpoints() -> None:
    """Checkpoints written before the trainer used the fused kernel must resume on it."""
    torch.manual_seed(0)
    stock_net, fused_net = torch.nn.Linear(64, 32), torch.nn.Linear(64, 32)
    fused_net.load_state_dict(stock_net.state_dict())
    stock = torch.optim.Adam(stock_net.parameters(), lr=1e-3, betas=(0.5, 0.999))
    fused = make_adam(fused_net.parameters(), lr=1e-3, betas=(0.5, 0.999))
    assert fused.defaults["fused"]  # the CPU has a fused kernel

    def step(net: torch.nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor) -> None:
        opt.zero_grad()
        net(x).square().mean().backward()
        opt.step()

    inputs = [torch.randn(8, 64) for _ in range(4)]
    step(stock_net, stock, inputs[0])
    fused.load_state_dict(copy.deepcopy(stock.state_dict()))  # as read from a file
    fused_net.load_state_dict(stock_net.state_dict())
    for x in inputs[1:]:
        step(stock_net, stock, x)
        step(fused_net, fused, x)
    for a, b in zip(stock_net.parameters(), fused_net.parameters(), strict=True):
        torch.testing.assert_close(a, b)


def test_fused_adam_steps_channels_last_parameters_like_contiguous_ones() -> None:
    """The CPU step swaps channels-last tensors for flat aliases; values, layouts and the
    state dict must come out as the stock optimizer's on the contiguous model, and a
    checkpoint must resume in either layout (the fused kernel itself updates a moment in
    another layout than its parameter wrongly)."""
    check_adam_across_layouts(torch.device("cpu"))


def check_adam_across_layouts(device: torch.device) -> None:
    """``make_adam`` on a channels-last and an NCHW copy of one net against the stock
    single-tensor Adam, through a cross-layout resume (also run on CUDA)."""
    torch.manual_seed(0)

    def net() -> torch.nn.Module:
        return torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.Conv2d(8, 4, 1)).to(device)

    ref_net, cl_net, nchw_net = net(), net(), net()
    cl_net.load_state_dict(ref_net.state_dict())
    nchw_net.load_state_dict(ref_net.state_dict())
    cl_net.to(memory_format=torch.channels_last)
    ref = torch.optim.Adam(ref_net.parameters(), lr=1e-2, betas=(0.5, 0.999), foreach=False)
    cl_opt = make_adam(cl_net.parameters(), lr=1e-2, betas=(0.5, 0.999))
    nchw_opt = make_adam(nchw_net.parameters(), lr=1e-2, betas=(0.5, 0.999))
    assert cl_opt.defaults["fused"]
    runs = [(ref_net, ref), (cl_net, cl_opt), (nchw_net, nchw_opt)]

    def step_all() -> None:
        x = torch.randn(2, 3, 9, 9, device=device)
        for model, opt in runs:
            opt.zero_grad()
            layout = torch.channels_last if model is cl_net else torch.contiguous_format
            model(x.contiguous(memory_format=layout)).square().mean().backward()
            opt.step()
        for model, _ in runs[1:]:
            for a, b in zip(ref_net.parameters(), model.parameters(), strict=True):
                torch.testing.assert_close(a, b)

    for _ in range(3):
        step_all()
    weight = cl_net[0].weight
    assert weight.is_contiguous(memory_format=torch.channels_last) and not weight.is_contiguous()
    for key in ("exp_avg", "exp_avg_sq"):
        assert cl_opt.state[weight][key].stride() == weight.stride()
        assert cl_opt.state[weight][key].shape == weight.shape
    # Each resumes from the other's checkpoint (as read from a file).
    cl_state = copy.deepcopy(cl_opt.state_dict())
    cl_opt.load_state_dict(copy.deepcopy(nchw_opt.state_dict()))
    nchw_opt.load_state_dict(cl_state)
    for _ in range(2):
        step_all()


def test_face_cache_is_optional_and_changes_nothing(
    face_dirs: tuple[Path, Path], tmp_path: Path
) -> None:
    from faceswap.train.dataset import CACHE_DIR

    dirs = (
        Path(shutil.copytree(face_dirs[0], tmp_path / "a")),
        Path(shutil.copytree(face_dirs[1], tmp_path / "b")),
    )
    for folder in dirs:
        shutil.rmtree(folder / CACHE_DIR, ignore_errors=True)
    plain = run_train(_cfg(dirs, tmp_path / "plain", iterations=2, cache_faces=False))
    assert not any((folder / CACHE_DIR).exists() for folder in dirs)
    cached = run_train(_cfg(dirs, tmp_path / "cached", iterations=2))
    assert all(list((folder / CACHE_DIR).glob("faces-32px-*.npy")) for folder in dirs)
    assert plain.losses == cached.losses


def test_auto_workers_feed_a_gpu_from_the_hosts_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    from faceswap.train.loop import resolve_workers

    gpu, cpu = torch.device("cuda"), torch.device("cpu")
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(16)), raising=False)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    assert resolve_workers(None, cpu) == 2  # the model needs the cores
    assert resolve_workers(None, gpu) == 7  # (16 - 2) cores over the two sides
    assert resolve_workers(0, gpu) == 0 and resolve_workers(3, cpu) == 3
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")  # torchrun, 4 GPUs on this host
    assert resolve_workers(None, gpu) == 2
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(128)), raising=False)
    monkeypatch.delenv("LOCAL_WORLD_SIZE")
    assert resolve_workers(None, gpu) == 8


@pytest.mark.slow
def test_compiled_model_trains_like_the_eager_one(
    face_dirs: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from faceswap.nets import blocks

    # Compiled, the layers run as stock convolutions (the eager CPU GEMM routes round
    # differently, which Adam's first, sign-like steps amplify): compare with those.
    monkeypatch.setattr(blocks, "SMALL_MAP_WEIGHT_GRAD", False)
    eager = run_train(_cfg(face_dirs, tmp_path / "eager", iterations=2, save_every=2))
    compiled = run_train(
        _cfg(face_dirs, tmp_path / "compiled", iterations=2, save_every=2, compile=True)
    )
    assert compiled.losses["loss"] == pytest.approx(eager.losses["loss"], rel=1e-3)
    a, b = _weights(eager.checkpoint), _weights(compiled.checkpoint)
    assert a.keys() == b.keys()  # compiling does not rename the saved weights
    for key in a:
        torch.testing.assert_close(b[key], a[key], atol=1e-4, rtol=1e-3)


def test_a_full_disk_is_one_clear_line_and_the_last_checkpoint_survives(
    face_dirs: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    from faceswap.train import checkpoint as ckpt

    real_save = torch.save
    saves = []

    def filling_up(obj: object, path: object, *args: object, **kwargs: object) -> None:
        saves.append(path)
        if len(saves) > 1:  # the second checkpoint finds the disk full
            raise OSError(errno.ENOSPC, "No space left on device")
        real_save(obj, path, *args, **kwargs)  # type: ignore[arg-type]

    m = tmp_path / "m"
    with monkeypatch.context() as patch:
        patch.setattr(ckpt.torch, "save", filling_up)
        with pytest.raises(FaceswapError) as err:
            run_train(_cfg(face_dirs, m, iterations=6, save_every=3))
    assert str(err.value) == (
        f"{m}: no space left on its disk; free some space, then rerun with --resume (the last "
        "complete checkpoint is intact)"
    )
    assert [it for it, _ in ckpt.list_checkpoints(m)] == [3]
    assert sorted(p.name for p in (m / "checkpoints").iterdir()) == ["ckpt_000000003"]
    assert run_train(_cfg(face_dirs, m, iterations=6, save_every=3, resume=True)).iteration == 6


def test_faces_folders_normalise_to_a_path_or_a_tuple(face_dirs: tuple[Path, Path]) -> None:
    one = _cfg(face_dirs, Path("m"), faces_a=[str(face_dirs[0])])
    assert one.faces_a == face_dirs[0]
    many = _cfg(face_dirs, Path("m"), faces_a=[str(face_dirs[0]), str(face_dirs[1])])
    assert many.faces_a == face_dirs


@pytest.mark.slow
def test_painted_masks_teach_the_learned_mask_what_covers_the_face(
    face_dirs: tuple[Path, Path], tmp_path: Path
) -> None:
    """A's faces come with masks painted around a hand over the left eye: A's decoder learns
    to leave it out (convert's learned-dst), B's decoder, taught by B's hulls, does not."""
    from faceswap.convert.swapper import Swapper
    from faceswap.train.dataset import MASKS_DIR, face_masks, load_face_set, read_face

    from .test_dataset import _occluded_mask

    faces_a = tmp_path / "a"
    shutil.copytree(face_dirs[0], faces_a)
    (faces_a / MASKS_DIR).mkdir()
    faces = load_face_set(faces_a, "A")
    for file, landmarks in zip(faces.files, faces.landmarks, strict=True):
        painted = np.minimum(face_masks(landmarks, 64, 64)[0], _occluded_mask(64))
        cv2.imwrite(str(faces_a / MASKS_DIR / file.name), painted)
    model_config = tiny_model_config(learned_mask=True)
    # At the default mask weight how soon the hand is learned hangs on the seed and the CPU's
    # kernels (after 400 steps 0.08-0.7 over seeds 0-2 and two GEMM routes on one machine);
    # a weight of 10 leaves it at 0.03-0.12 after 200 steps on all six (measured).
    cfg = _cfg((faces_a, face_dirs[1]), tmp_path / "m", iterations=200, save_every=200,
               log_every=50, lr=2e-3, model_config=model_config, mask_weight=10.0)  # fmt: skip
    run_train(cfg)
    assert ckpt.read_card(tmp_path / "m")["data"]["a"]["user_masks"] == 10
    model = ckpt.load_for_inference(tmp_path / "m", "cpu").model
    crops = np.stack([read_face(f, 32) for f in faces.files[:4]])
    out = Swapper(model, torch.device("cpu"), "a2b", dst_mask=True)(crops)
    assert out.masks is not None and out.dst_masks is not None
    hull = face_masks(faces.landmarks[0], 64, 32)[0] > 127
    hand = hull & (_occluded_mask(32) == 0)
    rest = hull & ~hand
    assert out.dst_masks[:, hand].mean() < 0.5 < 0.7 < out.dst_masks[:, rest].mean()
    assert out.masks[:, hand].mean() > 0.8  # the swap's own mask knows no hand


def test_warp_to_landmarks_trains_in_place_of_the_grid_warp(
    face_dirs: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from faceswap.train import loop
    from faceswap.train.augment import AugmentConfig

    def grid_warp(*args: object, **kwargs: object) -> None:
        raise AssertionError("the grid warp ran with --warp-to-landmarks")

    monkeypatch.setattr(loop, "random_warp", grid_warp)
    # a worker process: the partners travel to it with the dataset
    cfg = _cfg(face_dirs, tmp_path, iterations=2, save_every=2, workers=1,
               augment=AugmentConfig(warp_to_landmarks=True))  # fmt: skip
    result = run_train(cfg)
    assert result.iteration == 2 and math.isfinite(result.losses["loss"])


class _EnvDataset(torch.utils.data.Dataset):
    """Reports what a worker's environment says of numpy's BLAS threads."""

    def __len__(self) -> int:
        return 4

    def __getitem__(self, key: object) -> dict[str, torch.Tensor]:
        import os

        return {"source": torch.tensor(int(os.environ.get("OPENBLAS_NUM_THREADS", "0")))}


def test_workers_start_numpys_blas_with_one_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    # Idle OpenBLAS threads spin: a worker with several kept a core from the model.
    import os

    from faceswap.train.dataset import StreamSampler
    from faceswap.train.loop import stream_batches

    def seen_by_a_worker() -> list[int]:
        batches = stream_batches(_EnvDataset(), StreamSampler(4, 2, 0, 0), 2, 1, seed=0)
        try:
            return next(batches)["source"].tolist()
        finally:
            batches.close()

    monkeypatch.delenv("OPENBLAS_NUM_THREADS", raising=False)
    assert seen_by_a_worker() == [1, 1]
    assert "OPENBLAS_NUM_THREADS" not in os.environ  # this process untouched
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "3")  # the user's own setting wins
    assert seen_by_a_worker() == [3, 3]


def test_chosen_preview_faces_show_in_every_preview(
    face_dirs: tuple[Path, Path], tmp_path: Path
) -> None:
    from faceswap.io.images import list_images
    from faceswap.train.dataset import read_face

    chosen = tmp_path / "chosen"
    chosen.mkdir()
    picks = sorted(list_images(face_dirs[0]))[5:7]
    for path in picks:
        shutil.copy(path, chosen / path.name)
    model = tmp_path / "m"
    run_train(_cfg(face_dirs, model, iterations=2, save_every=2, preview_every=1,
                   preview_a=chosen))  # fmt: skip
    history = sorted((model / "previews").iterdir())
    assert len(history) == 2  # the timelapse: one grid per preview
    for path in history:
        grid = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
        assert grid.shape[0] == 4 * 32  # B's 4 faces; A's 2 rows, the rest padded
        for row, face in enumerate(picks):
            np.testing.assert_array_equal(grid[row * 32 : (row + 1) * 32, :32], read_face(face, 32))
        assert not grid[2 * 32 :, :32].any()
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FaceswapError, match=r"--preview-b .*empty: no face crops there"):
        run_train(_cfg(face_dirs, tmp_path / "m2", preview_b=empty))
    assert not (tmp_path / "m2" / "train_config.json").exists()


def test_a_run_says_what_it_is_about_to_do(
    face_dirs: tuple[Path, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    with caplog.at_level(logging.INFO, logger="faceswap.train.loop"):
        run_train(_cfg(face_dirs, tmp_path / "m", iterations=2, save_minutes=5))
    (header,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith("training")]
    assert "(32 px, " in header and " on cpu (float32" in header
    assert "batch 4 a side, 0 workers a side; A 10 faces, B 10" in header
    assert header.endswith("iteration 0 -> 2, checkpoints every 3 iterations or 5 minutes")


def test_training_time_adds_up_over_resumed_runs(
    face_dirs: tuple[Path, Path], tmp_path: Path
) -> None:
    import json

    from faceswap.train import checkpoint as ckpt

    m = tmp_path / "m"
    first = run_train(_cfg(face_dirs, m, iterations=2, save_every=2))
    before = ckpt.read_card(m)["train_seconds"]
    assert 0 < before <= first.seconds + 0.01
    second = run_train(_cfg(face_dirs, m, iterations=4, save_every=2, resume=True))
    after = ckpt.read_card(m)["train_seconds"]
    # This run's time is added to the first's (less what follows its last checkpoint).
    assert before < after <= before + second.seconds + 0.01
    assert second.train_seconds == pytest.approx(before + second.seconds)  # what the CLI says
    meta = json.loads((second.checkpoint / "meta.json").read_text())
    assert meta["train_seconds"] == after


def test_fewer_faces_than_the_batch_is_said(
    face_dirs: tuple[Path, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    run_train(_cfg(face_dirs, tmp_path / "m", iterations=1, save_every=1, batch_size=4))
    assert "fewer than --batch-size" not in caplog.text
    run_train(_cfg(face_dirs, tmp_path / "n", iterations=1, save_every=1, batch_size=12))
    assert f"{face_dirs[0]}: 10 faces, fewer than --batch-size 12" in caplog.text


def test_max_minutes_stops_with_a_checkpoint_that_resumes(
    face_dirs: tuple[Path, Path], tmp_path: Path
) -> None:
    from faceswap.train import checkpoint as ckpt

    m = tmp_path / "m"
    # Far less than a step: the run stops after its first, as Ctrl-C would.
    first = run_train(_cfg(face_dirs, m, iterations=6, save_every=100, max_minutes=1e-9))
    assert first.out_of_time and first.interrupted and first.iteration == 1
    assert [it for it, _ in ckpt.list_checkpoints(m)] == [1]
    rest = run_train(_cfg(face_dirs, m, iterations=3, save_every=100, resume=True))
    assert not rest.out_of_time and rest.start_iteration == 1 and rest.iteration == 3
    with pytest.raises(FaceswapError, match="--max-minutes must be >= 0"):
        _cfg(face_dirs, m, max_minutes=-1)

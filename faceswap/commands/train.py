"""`faceswap train`: parse options, build a TrainConfig, call run_train, print the outcome."""

from __future__ import annotations

from pathlib import Path

import click

from faceswap.convert.colour import crop_colour_modes
from faceswap.device import AMP_DTYPES, DEVICE_CHOICES, amp_hint
from faceswap.nets import PRESETS
from faceswap.nets.discriminator import NORMS
from faceswap.nets.losses import LOSSES
from faceswap.train.loop import OPTIMIZERS
from faceswap.train.lr_finder import LR_FINDER_MODES

GAN_CHOICES = ("off", "bce", "hinge", "wgan-gp")


def _widths(text: str) -> tuple[int, ...]:
    try:
        widths = tuple(int(part) for part in str(text).split(","))
    except ValueError:
        raise click.BadParameter(f"expected channel counts like 64,128,256, got {text!r}") from None
    if not widths or min(widths) < 1:
        raise click.BadParameter(f"channel counts must be positive, got {text!r}")
    return widths


# Above this share of the time spent waiting for batches, the data pipeline is the limit.
DATA_WAIT_HINT = 0.2


@click.command(context_settings={"show_default": True})
@click.option(
    "--a",
    "faces_a",
    required=True,
    multiple=True,
    type=click.Path(path_type=Path),
    help="Faces of A: a `faceswap extract` output folder (crops + alignments.json); "
    "repeat it to train on several as one set.",
)
@click.option(
    "--b",
    "faces_b",
    required=True,
    multiple=True,
    type=click.Path(path_type=Path),
    help="Faces of B: a `faceswap extract` output folder; repeatable, as --a.",
)
@click.option(
    "-m",
    "--model-dir",
    required=True,
    type=click.Path(path_type=Path),
    help="Model folder: weights, checkpoints, previews, metrics.csv, model card.",
)
@click.option(
    "--preset",
    default=None,
    show_default="original, or the model's on --resume",
    help=f"Model preset name ({', '.join(PRESETS.names())}) or YAML path; `faceswap "
    "presets` compares them.",
)
@click.option(
    "--learned-mask/--no-learned-mask",
    default=None,
    show_default="preset's",
    help="Learn a face mask (trained on the landmark hull) beside the RGB output.",
)
@click.option("--iterations", default=100_000, help="Total iterations (counting resumed ones).")
@click.option("--batch-size", default=16, help="Faces per side per step (per process).")
@click.option("--lr", default=5e-5, help="Learning rate of the autoencoder.")
@click.option(
    "--lr-finder",
    type=click.Choice(LR_FINDER_MODES),
    default="off",
    show_default=True,
    help="Find --lr for a new model first (faceswap's LR finder): a range test writes "
    "lr_finder.png/.csv to -m; set: then train with it; exit: report it and stop.",
)
@click.option("--lr-finder-steps", default=300, show_default=True, help="Steps of the range test.")
@click.option(
    "--lr-finder-strength",
    default=10.0,
    show_default=True,
    help="The rate at the lowest loss divided by this (5: aggressive, 2.5: extreme).",
)
@click.option(
    "--optimizer",
    type=click.Choice(OPTIMIZERS.names()),
    default=None,
    help="The autoencoder's optimiser: adam (default for a new model) or adabelief "
    "(DeepFaceLab's default). A resumed model keeps its own.",
)
@click.option(
    "--lr-warmup",
    default=0,
    help="Ramp the learning rate up to --lr over the model's first N iterations (0: off): "
    "steadies the start, above all of fresh decoders on an --init-from encoder.",
)
@click.option(
    "--lr-dropout",
    default=0.0,
    help="Share of the weight updates dropped at each step, drawn anew per weight (0: off; "
    "DeepFaceLab's lr_dropout is 0.7), as DFL users run the last stage, with --no-warp.",
)
@click.option("--seed", default=0, help="Seed for weights, sampling and augmentation.")
@click.option(
    "--device", default="auto", type=click.Choice(DEVICE_CHOICES), help="Training device."
)
@click.option(
    "--amp/--no-amp",
    default=False,
    help="Mixed precision: bf16/fp16 on CUDA, bf16 on CPUs with AVX512-BF16 or AMX.",
)
@click.option(
    "--amp-dtype",
    default="auto",
    type=click.Choice(AMP_DTYPES),
    help="AMP dtype: auto picks bf16 where the GPU or CPU supports it, else fp16 + scaling "
    "(GPU) or float32 (CPU).",
)
@click.option(
    "--channels-last/--no-channels-last",
    default=None,
    help="NHWC memory format [default: on for CUDA, CPU bf16 and Intel CPUs; off elsewhere].",
)
@click.option(
    "--compile/--no-compile",
    "compile_",
    default=False,
    help="torch.compile the model (slow start, faster steps on GPU).",
)
@click.option(
    "--workers",
    type=click.IntRange(min=0),
    default=None,
    help="DataLoader worker processes per side (0: none).  [default: 2 on the CPU; on a GPU "
    "the host's cores less 2, over both sides and local processes, 2-8 each]",
    show_default=False,
)
@click.option(
    "--cache-faces/--no-cache-faces",
    default=True,
    help="Decode the crops once into a cache file in each faces folder (2.5-4x faster loading).",
)
@click.option(
    "--loss",
    default="ssim:1,l1:1",
    help=f"Reconstruction terms name:weight,... from {', '.join(LOSSES.names())} "
    "(e.g. ssim:1,l1:1,ffl:10 for sharper detail).",
)
@click.option(
    "--background-weight", default=0.1, help="Weight of pixels outside the landmark hull (0..1)."
)
@click.option("--eye-weight", default=3.0, help="Loss multiplier on the eyes (1: off).")
@click.option("--mouth-weight", default=2.0, help="Loss multiplier on the mouth (1: off).")
@click.option("--mask-weight", default=1.0, help="Weight of the learned-mask loss.")
@click.option("--gan", default="off", type=click.Choice(GAN_CHOICES), help="Adversarial loss.")
@click.option("--gan-weight", default=0.1, help="Weight of the generator's adversarial term.")
@click.option("--gan-lr", default=1e-4, help="Learning rate of the discriminator.")
@click.option("--gp-lambda", default=10.0, help="Gradient-penalty weight (wgan-gp).")
@click.option("--gan-start", default=0, help="Iteration at which the adversarial term starts.")
@click.option(
    "--gan-widths",
    "disc_widths",
    default="64,128,256",
    show_default=True,
    callback=lambda ctx, param, value: _widths(value),
    help="Channels of the PatchGAN's stride-2 convs: k of them judge patches of about "
    "4x2^k px (3: 34 px; DeepFaceLab's GAN patch size). One more doubles the patch.",
)
@click.option(
    "--gan-norm",
    "disc_norm",
    default="auto",
    show_default=True,
    type=click.Choice(["auto", *NORMS]),
    help="Discriminator normalisation; auto: instance for wgan-gp, spectral otherwise.",
)
@click.option(
    "--true-face-power",
    default=0.0,
    help="Weight of DeepFaceLab's true-face term (0: off; DFL suggests 0.01): a critic on the "
    "encoder's codes makes B's codes pass for A's, so swaps look more like B. df presets.",
)
@click.option(
    "--face-style-power",
    default=0.0,
    help="DeepFaceLab's face style power (0: off; its numbers, 0-100): the swap of A takes "
    "the colour and lighting of A's face. DFL: only once faces are clear, from 0.001 up.",
)
@click.option(
    "--bg-style-power",
    default=0.0,
    help="DeepFaceLab's background style power (0: off; 0-100): outside A's face the swap "
    "learns A's background, so the swapped face's edge blends into it.",
)
@click.option(
    "--clip-grad",
    default=0.0,
    help="Clip the autoencoder's gradient norm to this (0: off); guards long or GAN runs "
    "against loss spikes. metrics.csv logs grad_norm.",
)
@click.option(
    "--autoclip",
    is_flag=True,
    help="Clip gradients adaptively (faceswap's AutoClip): to the --autoclip-percentile of "
    "the model's recent gradient norms; no threshold to guess. metrics.csv logs clip.",
)
@click.option(
    "--autoclip-percentile",
    default=10.0,
    show_default=True,
    help="Percentile of the recent gradient norms that --autoclip clips to.",
)
@click.option(
    "--warp/--no-warp",
    default=True,
    help="Warp the input: the classic random warp (or --warp-to-landmarks); off, neither.",
)
@click.option(
    "--warp-to-landmarks",
    is_flag=True,
    help="In place of the random warp, warp each input onto the landmarks of a similar face "
    "of the other side (faceswap's warp to landmarks).",
)
@click.option("--flip/--no-flip", default=True, help="Random horizontal flips.")
@click.option(
    "--flip-b/--no-flip-b",
    default=True,
    help="Flip B's faces too; --no-flip-b flips only A's (DeepFaceLab's src flip is off: a "
    "parting or a mole of the face put in stays on its side).",
)
@click.option(
    "--blur-out-mask",
    is_flag=True,
    help="Blur the targets' background near the face (DeepFaceLab's blur out mask): it "
    "shows less around the swapped face.",
)
@click.option("--colour/--no-colour", default=True, help="Lighting and colour augmentation.")
@click.option(
    "--colour-strength",
    "--color-strength",
    "colour_strength",
    default=1.0,
    help="Scale the lighting and colour augmentation's limits (0.5 half, 2 twice; DFL's "
    "random HSV power).",
)
@click.option("--blur/--no-blur", default=True, help="Blur and noise on the input.")
@click.option(
    "--jpeg/--no-jpeg",
    default=False,
    help="Also JPEG artefacts on the input (a third of the samples, quality 30-90), for "
    "compressed footage.",
)
@click.option(
    "--downscale/--no-downscale",
    default=False,
    help="Also lost resolution on the input (a third of the samples shrunk to 25-75 % and "
    "enlarged back; DFL's random downsample), for soft or upscaled footage.",
)
@click.option(
    "--colour-transfer",
    "--color-transfer",
    "colour_transfer",
    type=click.Choice(crop_colour_modes()),
    default="none",
    help="Give each B face the colours of a random A face (a convert colour mode, as "
    "DeepFaceLab's ct_mode): B is learnt in A's lighting. rct suits most footage.",
)
@click.option(
    "--uniform-yaw/--no-uniform-yaw",
    default=False,
    help="Draw faces so every head turn (from the landmarks) comes up equally often: the few "
    "profile faces of mostly frontal footage are learnt too (DeepFaceLab's uniform_yaw).",
)
@click.option("--rotation", default=10.0, help="Max random rotation in degrees.")
@click.option("--zoom", default=0.05, help="Max random zoom (fraction).")
@click.option("--shift", default=0.05, help="Max random shift (fraction of the crop).")
@click.option("--warp-strength", default=0.02, help="Random warp jitter (fraction of the crop).")
@click.option("--save-every", default=1000, help="Checkpoint interval in iterations.")
@click.option(
    "--save-minutes",
    default=30.0,
    help="Also checkpoint once this many minutes passed since the last checkpoint (0: off): "
    "with slow steps a crash loses at most that much (DeepFaceLab autosaves every 25).",
)
@click.option(
    "--max-minutes",
    default=0.0,
    help="Stop with a checkpoint once this run has trained this long (0: no limit), for a "
    "job with a wall-time limit or a GPU rented by the hour; --resume goes on.",
)
@click.option("--keep", default=3, help="Checkpoints to keep.")
@click.option("--preview-every", default=500, help="Preview interval (0: only at the end).")
@click.option("--preview-faces", default=4, help="Faces of each side in the preview (rows).")
@click.option(
    "--show-samples",
    is_flag=True,
    help="Write samples.png into -m and stop without training: --preview-faces faces of "
    "each side of the first batch as the model gets them (the augmented, warped input; the "
    "target; each pixel's loss weight): look at the augmentation options before a long run.",
)
@click.option("--log-every", default=10, help="Metrics interval in iterations.")
@click.option(
    "--init-from",
    type=click.Path(path_type=Path),
    default=None,
    help="Start this new model from the weights of another model folder (reuse a trained "
    "model for a new pair: it converges much sooner); its preset unless --preset is given.",
)
@click.option(
    "--init-parts",
    type=click.Choice(["all", "encoder"]),
    default="all",
    help="What --init-from copies: all (same preset), or the shared encoder only.",
)
@click.option(
    "--freeze",
    default="",
    help="Model parts whose weights stay fixed, comma-separated: encoder (faceswap's "
    "freeze-weights: with --init-from, new decoders learn on a trained encoder, and steps "
    "are faster), or any part of the preset (liae: encoder, inter_ab, inter_b, decoder).",
)
@click.option("--resume", is_flag=True, help="Continue from the newest checkpoint in -m.")
@click.option(
    "--resume-from",
    type=int,
    default=None,
    help="Continue from the checkpoint of this iteration (a roll-back); newer ones are moved "
    "to checkpoints/abandoned_<iteration>/.",
)
@click.option(
    "--snapshot-every",
    default=0,
    help="Also keep every checkpoint at a multiple of this many iterations, beyond --keep "
    "(0: none): points to roll back to with --resume-from.",
)
@click.option(
    "--preview-a",
    type=click.Path(path_type=Path),
    default=None,
    help="A folder of A's crops to show in every preview instead (a timelapse in previews/; "
    "DFL's preview history image).",
)
@click.option(
    "--preview-b",
    type=click.Path(path_type=Path),
    default=None,
    help="The same for B's faces.",
)
@click.option("--progress/--no-progress", default=True, help="Show a progress bar.")
@click.option(
    "--tensorboard/--no-tensorboard", default=True, help="Also log to TensorBoard (when installed)."
)
def train(
    faces_a: tuple[Path, ...],
    faces_b: tuple[Path, ...],
    model_dir: Path,
    preset: str | None,
    learned_mask: bool | None,
    compile_: bool,
    warp: bool,
    warp_to_landmarks: bool,
    flip: bool,
    colour: bool,
    colour_strength: float,
    blur: bool,
    jpeg: bool,
    downscale: bool,
    colour_transfer: str,
    rotation: float,
    zoom: float,
    shift: float,
    warp_strength: float,
    **options: object,
) -> object:
    """Train the shared encoder and decoders A and B on aligned faces.

    Ctrl-C or SIGTERM saves a checkpoint and stops; `--resume` continues exactly where the
    last checkpoint left off. Multi-GPU: `torchrun --nproc_per_node=N -m faceswap train ...`.
    """
    from faceswap.train.augment import AugmentConfig
    from faceswap.train.loop import TrainConfig, run_train

    cfg = TrainConfig(
        faces_a=faces_a,
        faces_b=faces_b,
        model_dir=model_dir,
        preset=preset,
        learned_mask=learned_mask,
        compile=compile_,
        augment=AugmentConfig(
            flip=flip,
            rotation=rotation,
            zoom=zoom,
            shift=shift,
            warp=warp,
            warp_to_landmarks=warp_to_landmarks,
            warp_strength=warp_strength,
            colour=colour,
            colour_strength=colour_strength,
            blur=blur,
            jpeg=jpeg,
            downscale=downscale,
            colour_transfer=colour_transfer,
        ),
        **options,  # type: ignore[arg-type]
    )
    result = run_train(cfg)
    if result.samples is not None:
        click.echo(
            f"wrote {result.samples}: for each side the input, the target and each pixel's "
            f"loss weight of iteration {result.iteration}'s batch; nothing was trained"
        )
        return result
    if result.lr_found is not None:
        click.echo(
            f"lr finder: suggested --lr {result.lr_found:.3g} (the curve: "
            f"{result.model_dir / 'lr_finder.png'})"
        )
    if result.checkpoint is None:  # not rank 0 under torchrun, or --lr-finder exit
        return result
    from faceswap.text import duration

    state = "interrupted" if result.interrupted else "finished"
    if result.out_of_time:
        state = f"stopped after --max-minutes {cfg.max_minutes:g}"
    losses = ", ".join(f"{k} {v:.4f}" for k, v in sorted(result.losses.items()) if "loss" in k)
    in_all = f", {duration(result.train_seconds)} of training in all"
    click.echo(
        f"{state} at iteration {result.iteration} ({result.iteration - result.start_iteration} "
        f"this run in {duration(result.seconds)}, {result.it_per_s:.2f} it/s, waiting for data "
        f"{result.data_wait:.0%} of the time{in_all})" + (f"; {losses}" if losses else "")
    )
    if result.data_wait > DATA_WAIT_HINT:
        click.echo(
            f"tip: the model waited for data {result.data_wait:.0%} of the time: raise "
            f"--workers (this run had {result.workers} per side)",
            err=True,
        )
    click.echo(f"checkpoint: {result.checkpoint}")
    click.echo(f"model: {result.model_dir}")
    if hint := amp_hint(cfg.device, cfg.amp):
        click.echo(hint, err=True)
    return result  # for `faceswap run`: an interrupted run is not a finished stage

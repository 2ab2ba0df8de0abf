"""Scratch diffusion baseline for the same gap: train, resume, evaluate, and fill between two photos.

A conditional DDPM (models/diffusion.py) learns to predict the noise in the hole from 7 channels
(noisy image, mask, known pixels); sampling re-imposes the known pixels at every step (RePaint-style)
and keeps them exactly in the output. Same data, masks, flags, results layout and checkpoint rules
as main.py, so the GAN and this baseline are compared on equal terms (benchmarks/compare.py).

    python diffusion.py --mode train --epochs 30                  # on data/scenery/train, 64^2
    python diffusion.py --mode train --checkpoint_path checkpoints/diffusion/checkpoint_epoch_30.pth --epochs 50
    python diffusion.py --mode eval --checkpoint_path checkpoints/diffusion/checkpoint_epoch_50.pth
    python diffusion.py --mode eval --checkpoint_path CKPT --scheduler ddpm --num_inference_steps 1000
    python diffusion.py --mode eval_2 --checkpoint_path CKPT --image1 a.jpg --image2 b.jpg
    python diffusion.py --mode eval --test_dir data/scenery/test  # the shipped checkpoints/diffusion_scenery_64.pth
    # the shipped baseline's run (docs/diffusion.md: its time and hardware):
    OMP_NUM_THREADS=1 python diffusion.py --mode train --image_size 64 --repeat 10 --epochs 250 --save_every 25

Sampling: --scheduler ddim (default, 50 steps) or dpm (DPM-Solver++), or ddpm with 1000 steps, the
document's ancestral sampler; EMA weights. Every flag also accepts dashes (--num-inference-steps).
Defaults write to checkpoints/diffusion and results/diffusion, apart from the GAN's files.
"""
import argparse
import sys
from pathlib import Path

from models.options import BETA_SCHEDULES, SAMPLERS
from utils.cli import Parser, add_shared_args, check_input_files, check_shared_args, parse_or_exit, run
from utils.errors import InputError

# What defines the training recipe: on resume these come from the checkpoint (as in main.py).
RECIPE_KEYS = ("image_size", "crop_ratio", "base_channels", "channel_mult", "layers_per_block", "attention",
               "num_train_timesteps", "beta_schedule", "batch_size", "lr", "max_grad_norm", "ema_max_decay",
               "mask_kinds", "repeat", "seed", "train_dir")


def parse_args(argv=None):
    parser = Parser(description=__doc__)
    add_shared_args(parser, default_size=64, default_batch=16, default_lr=5e-4)
    parser.set_defaults(checkpoint_dir="checkpoints/diffusion", results_dir="results/diffusion")
    parser.add_argument("--base_channels", type=int, default=16, help="UNet width at full resolution")
    parser.add_argument("--channel_mult", default="1,2,4,8,8",
                        help="width of each level as a multiple of --base_channels; one level per entry, "
                             "each but the last halves the resolution")
    parser.add_argument("--layers_per_block", type=int, default=1, help="ResNet blocks per UNet level")
    parser.add_argument("--attention", action=argparse.BooleanOptionalAction, default=True,
                        help="self-attention at the lowest resolution (--no-attention to drop it)")
    parser.add_argument("--num_train_timesteps", type=int, default=1000, help="T of the forward process")
    parser.add_argument("--beta_schedule", choices=BETA_SCHEDULES, default=BETA_SCHEDULES[0],
                        help="noise schedule (squaredcos_cap_v2: improved DDPM's cosine)")
    parser.add_argument("--max_grad_norm", type=float, default=1.0, help="gradient clipping")
    parser.add_argument("--ema_max_decay", type=float, default=0.999,
                        help="EMA of the weights used for sampling (decay warms up from 0 to this)")
    parser.add_argument("--scheduler", choices=SAMPLERS, default="ddim",
                        help="sampler for eval/eval_2 and the training sample grids: ddim (Song et al. 2021), "
                             "dpm (DPM-Solver++), ddpm (ancestral, the document's, with 1000 steps)")
    parser.add_argument("--num_inference_steps", type=int, default=50, help="denoising steps when sampling")
    args = parser.parse_args(argv)
    check_shared_args(parser, args, eval_flags={"scheduler", "num_inference_steps", "seed"})
    if args.num_inference_steps < 1 or args.base_channels < 1 or args.layers_per_block < 1:
        parser.error("--num_inference_steps, --base_channels and --layers_per_block must be >= 1")
    return args


if __name__ == "__main__":
    # Bad flags, values and input files are refused here, before the imports below (torch alone takes
    # seconds): one line `error: ...`, exit status 2, in well under a second (utils/cli.parse_or_exit).
    CLI_ARGS = parse_or_exit(parse_args, check_input_files)

import torch  # noqa: E402

from data.masks import apply_mask  # noqa: E402
from losses import hole_mse  # noqa: E402
from models import count_parameters  # noqa: E402
from models.diffusion import make_noise_scheduler, make_sampler, repaint_sample, scheduler_config  # noqa: E402
from utils.loading import SHIPPED_DIFFUSION  # noqa: E402
from utils.loading import build_diffusion_model as build_model  # noqa: E402
from utils.loading import diffusion_block_channels as block_channels  # noqa: E402
from utils.loading import diffusion_fill as make_fill  # noqa: E402
from utils.loading import load_diffusion_model as load_model  # noqa: E402
from utils.loading import make_diffusion_ema as make_ema  # noqa: E402
from utils.checkpoint import epoch_checkpoint_path, rng_state, save_checkpoint, set_rng_state  # noqa: E402
from utils.evaluation import eval_device, run_eval_mode  # noqa: E402
from utils.hardware import AUTOCAST_DTYPES, configure_threads, resolve_mixed_precision  # noqa: E402
from utils.training import (EpochLog, LossLog, TimeBudget, checkpoint_on_interrupt,  # noqa: E402
                            fixed_sample_batch, make_accelerator, make_train_loader, run_config, save_samples,
                            start_run)


def train_step(batch, model, ema, optimizer, noise_scheduler, args, accelerator) -> dict:
    """One DDPM step (Ho et al. 2020, Alg. 1) on the hole. Returns the losses as floats."""
    image = batch["image"]  # (B, 3, S, S) in [-1, 1]
    mask = batch["mask"]  # (B, 1, S, S), 1 = generate
    masked = apply_mask(image, mask)
    # Noise and timesteps from torch's global RNG, which checkpoints store: resume is exact.
    noise = torch.randn_like(image)
    t = torch.randint(0, noise_scheduler.config.num_train_timesteps, (len(image),), device=image.device)
    x_t = noise_scheduler.add_noise(image, noise, t)  # the whole image: the known region is noised as in sampling
    loss = hole_mse(model(x_t, t, masked, mask), noise, mask)
    optimizer.zero_grad(set_to_none=True)
    accelerator.backward(loss)
    grad_norm = accelerator.clip_grad_norm_(model.parameters(), args.max_grad_norm)
    optimizer.step()
    ema.step(model.parameters())
    return {"loss": loss.item(), "grad_norm": float(grad_norm)}


@torch.no_grad()
def sample_with_ema(model, ema, sampler, masked, mask, args, device) -> torch.Tensor:
    """The training sample grid: EMA weights swapped in, then back; a fixed seed, global RNG untouched."""
    ema.store(model.parameters())
    ema.copy_to(model.parameters())
    generator = torch.Generator(device).manual_seed(args.seed)
    output = repaint_sample(model.eval(), sampler, masked, mask, args.num_inference_steps, generator,
                            AUTOCAST_DTYPES[args.mixed_precision])
    ema.restore(model.parameters())
    return output


def train(args, hardware: str = ""):
    # Setup: one process per device (`accelerate launch`); the main one prints and writes. Resume first, so
    # that the recipe comes from the checkpoint.
    accelerator = make_accelerator(args.mixed_precision, args.cpu)
    if hardware:  # "using N threads; autocast: ...", from main()
        accelerator.print(hardware)
    resume, mask_kinds = start_run(args, "diffusion", RECIPE_KEYS, accelerator)
    config = run_config(args)
    widths = block_channels(config)  # bad --channel_mult fails here, before the data are decoded
    torch.manual_seed(args.seed)

    # Data: decoded once, kept in memory.
    loader = make_train_loader(args, mask_kinds, show_progress=accelerator.is_main_process)
    samples = fixed_sample_batch(args)

    # Model, noise schedule, EMA, optimizer.
    model = build_model(config)
    noise_scheduler = make_noise_scheduler(args.num_train_timesteps, args.beta_schedule)
    sampler = make_sampler(args.scheduler, scheduler_config(noise_scheduler))
    ema = make_ema(model, config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.0)
    accelerator.print(f"diffusion UNet: {count_parameters(model) / 1e6:.2f} M parameters, "
                      f"widths {widths}")

    start_epoch, step = 0, 0
    if resume:
        model.load_state_dict(resume["model"])
        ema.load_state_dict(resume["ema"])
        optimizer.load_state_dict(resume["optimizer"])
        start_epoch, step = resume["epoch"], resume["step"]
        set_rng_state(resume["rng"])
        accelerator.print(f"resumed from {args.checkpoint_path}: epoch {start_epoch}, step {step}")
        if start_epoch >= args.epochs:
            accelerator.print(f"nothing to do: the checkpoint is at epoch {start_epoch} and --epochs is {args.epochs}")
            return
    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
    ema.to(accelerator.device)

    # Loop.
    loss_log = LossLog(Path(args.results_dir) / "train" / "losses.csv", resume_step=step) \
        if accelerator.is_main_process else None
    epoch = start_epoch

    def training_state(epoch_done: int) -> dict:
        return {"kind": "diffusion", "config": config, "scheduler_config": scheduler_config(noise_scheduler),
                "epoch": epoch_done, "step": step, "rng": rng_state(),
                "model": accelerator.unwrap_model(model).state_dict(), "ema": ema.state_dict(),
                "optimizer": optimizer.state_dict()}

    budget = TimeBudget(args.max_minutes)
    with checkpoint_on_interrupt(accelerator, lambda: training_state(epoch - 1), args.checkpoint_dir, loss_log):
        for epoch in range(start_epoch + 1, args.epochs + 1):
            model.train()
            epoch_log = EpochLog(loader, epoch, args.epochs, loss_log, args.log_interval, accelerator)
            for batch in epoch_log:
                losses = train_step(batch, model, ema, optimizer, noise_scheduler, args, accelerator)
                step += 1
                epoch_log.record(step, losses, len(batch["image"]))
            out_of_time = budget.spent(accelerator)
            if not accelerator.is_main_process:
                if out_of_time:
                    break
                continue

            # End of epoch: every --save_every epochs, at the last and when --max_minutes is spent, a sample grid
            # and a checkpoint; sampling costs --num_inference_steps forward passes, too many to do every epoch.
            loss_log.flush()
            if epoch % args.save_every == 0 or epoch == args.epochs or out_of_time:
                masked_s, mask_s, image_s = (t.to(accelerator.device) for t in samples)
                output_s = sample_with_ema(accelerator.unwrap_model(model), ema, sampler, masked_s, mask_s,
                                           args, accelerator.device)
                save_samples(Path(args.results_dir) / "train" / "samples" / f"epoch_{epoch:04d}.png",
                             masked_s, output_s, image_s)
                path = save_checkpoint(training_state(epoch), epoch_checkpoint_path(args.checkpoint_dir, epoch))
                print(f"saved {path}")
            if out_of_time:
                print(budget.stop_message(epoch, args.epochs, path))
                break


def main(args):
    threads = configure_threads(args.threads)  # the cores not busy with other work (utils/hardware.py)
    args.mixed_precision = resolve_mixed_precision(args.mixed_precision, args.cpu)
    if args.mode == "train":
        return train(args, hardware=f"using {threads}; autocast: {args.mixed_precision}")
    # Default: the small shipped baseline (checkpoints/diffusion_scenery_64.pth, found from any folder).
    args.checkpoint_path = args.checkpoint_path or SHIPPED_DIFFUSION
    model, config, schedule_config = load_model(args.checkpoint_path)
    if args.num_inference_steps > schedule_config["num_train_timesteps"]:
        raise InputError(f"--num_inference_steps {args.num_inference_steps} exceeds the "
                         f"{schedule_config['num_train_timesteps']} training timesteps of {args.checkpoint_path}")
    device = eval_device(args.cpu)
    print(f"sampling: {args.scheduler}, {args.num_inference_steps} steps, EMA weights, {config['image_size']}^2")
    fill = make_fill(model, schedule_config, device, args.scheduler, args.num_inference_steps, args.seed,
                     args.mixed_precision)
    run_eval_mode(fill, args, config["image_size"], config["crop_ratio"], device, model=args.checkpoint_path)


if __name__ == "__main__":
    sys.exit(run(main, parse_args, args=CLI_ARGS))

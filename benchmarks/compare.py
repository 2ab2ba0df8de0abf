"""GAN vs scratch diffusion on the same gap, as numbers: a table (markdown + CSV) and a plot.

    python benchmarks/compare.py                  # the shipped GAN and diffusion checkpoints
    python benchmarks/compare.py --gan_checkpoint G.pth --diffusion_checkpoint D.pth --steps ddim:50,dpm:20,1000

Methods, all filled and scored by utils.evaluation.evaluate_folder (same test images, same gap
masks, same metric code; each method's images and metrics.csv under --out_dir/<method>/):
  * the training-free floors: mean colour, OpenCV Telea, the harmonic fill, OpenCV FSR and OpenCV shift-map
    (exemplar-based) (models/baselines.py);
  * the GAN (--gan_checkpoint, a main.py training checkpoint or generator export);
  * the diffusion model (--diffusion_checkpoint) once per --steps entry: "N" samples with
    --scheduler in N steps, except N = T (the model's training timesteps, 1000), which is the
    document's DDPM ancestral sampling; "name:N" picks the sampler (ddim, dpm, ddpm).
Each model runs at its own checkpoint's image size (the floors at every size used); the crop ratio
must be the same. Training images/s: a short timed loop of each script's own `train_step`
(main.train_step, diffusion.train_step) at the checkpoint's image size and batch size, on random
images, on this machine, so both rates come from the same hardware whichever machine trained the
checkpoints (the decode-once data pipeline adds ~nothing). Writes comparison.{md,csv,png}.
"""
import os
import platform
import shlex
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import diffusion  # noqa: E402  (its train_step, timed below)
import main as gan  # noqa: E402  (its train_step, timed below)
from data.images import list_images  # noqa: E402
from data.masks import check_crop_ratio, masked_input  # noqa: E402
from models import count_parameters  # noqa: E402
from models.baselines import BASELINES  # noqa: E402
from models.options import SAMPLERS  # noqa: E402
from utils.loading import (SHIPPED_DIFFUSION, SHIPPED_MODEL, build_diffusion_model, diffusion_fill,  # noqa: E402
                           generator_fill, load_diffusion_model, load_generator, make_diffusion_ema)
from utils.cli import Parser, run  # noqa: E402
from utils.errors import InputError  # noqa: E402
from utils.files import check_writable_folder  # noqa: E402
from utils.evaluation import eval_device, evaluate_folder, write_csv_atomic  # noqa: E402
from sd.compare import plot_metrics  # noqa: E402
from utils.training import make_accelerator  # noqa: E402

COLUMNS = ("method", "image_size", "params_M", "train_images_per_s", "seconds_per_image", "psnr_hole", "ssim_hole",
           "l1_hole", "psnr_lowpass", "sharpness", "placement", "swd", "psnr", "ssim", "lpips")
FLOOR_NAMES = {"mean": "mean colour", "telea": "Telea inpainting", "harmonic": "harmonic fill",
               "fsr": "OpenCV FSR", "shiftmap": "OpenCV shift-map (exemplar-based)"}


def parse_args(argv=None):
    parser = Parser(description=__doc__)
    parser.add_argument("--gan_checkpoint", default=SHIPPED_MODEL)
    parser.add_argument("--diffusion_checkpoint", default=SHIPPED_DIFFUSION,
                        help="written by `diffusion.py --mode train` (default: the shipped 64² baseline)")
    parser.add_argument("--test_dir", default="data/scenery/test")
    parser.add_argument("--out_dir", default="results/compare")
    parser.add_argument("--steps", default="50,1000",
                        help="diffusion runs: N (--scheduler, or ddpm when N = T) or sampler:N, comma-separated")
    parser.add_argument("--scheduler", choices=SAMPLERS, default="ddim", help="sampler of the plain-N entries")
    parser.add_argument("--batch_size", type=int, default=8, help="eval batch size (the same for every method)")
    parser.add_argument("--mixed_precision", choices=("no", "bf16", "fp16"), default="no",
                        help="autocast for every model, in training timing and in eval")
    parser.add_argument("--timing_steps", type=int, default=3,
                        help="timed training steps per model (after one warm-up); 0 skips the training timing")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cpu", action="store_true", help="run on CPU even if a GPU is available")
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # for the table's "Command" line
    return args


def parse_runs(text: str, num_train_timesteps: int, default_sampler: str) -> list:
    """'50,dpm:20,1000' -> [('ddim', 50), ('dpm', 20), ('ddpm', 1000)] (with T = 1000, ddim default)."""
    runs = []
    for item in (s.strip() for s in text.split(",") if s.strip()):
        name, _, count = item.rpartition(":")
        if not count.isdigit() or int(count) < 1 or int(count) > num_train_timesteps or name not in ("",) + SAMPLERS:
            raise InputError(f"--steps: bad entry {item!r}; use N or sampler:N with sampler in {SAMPLERS} and "
                             f"1 <= N <= {num_train_timesteps}")
        steps = int(count)
        runs.append((name or ("ddpm" if steps == num_train_timesteps else default_sampler), steps))
    if not runs:
        raise InputError("--steps is empty; try 50,1000")
    return runs


def random_batch(image_size: int, batch_size: int, crop_ratio: float, device) -> dict:
    image = torch.rand(batch_size, 3, image_size, image_size, device=device) * 2 - 1
    return {"image": image, "mask": masked_input(image, crop_ratio)[1].contiguous()}


def timed(step, steps: int, batch_size: int, device) -> float:
    """Images per second of `step()` over `steps` calls, after one warm-up call."""
    step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return batch_size * steps / (time.perf_counter() - start)


def gan_training_rate(config: dict, accelerator, steps: int) -> float:
    """main.train_step at the GAN's recipe (random weights: the speed does not depend on them)."""
    from losses import AdversarialLoss, VGGPerceptualLoss, build_perceptual_loss
    generator, discriminator = gan.build_training_networks(config)
    opt_g = torch.optim.Adam(generator.parameters(), lr=config["lr"], betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=config["lr"], betas=(0.5, 0.999))
    generator, discriminator, opt_g, opt_d = accelerator.prepare(generator, discriminator, opt_g, opt_d)
    perceptual = None
    if config.get("perceptual_loss") and config.get("perceptual", "vgg19") == "effnet":
        perceptual = build_perceptual_loss("effnet")[0].to(accelerator.device)
    elif config.get("perceptual_loss"):  # the VGG19 term costs the same with random weights
        from torchvision.models import vgg19
        perceptual = VGGPerceptualLoss(vgg19(weights=None).features).to(accelerator.device)
    # Flags missing from an older checkpoint's config take main.py's defaults, which leave the newer loss
    # terms off (low-pass, squared error, detail variant); except lambda_fm (default 10): checkpoints older
    # than feature matching trained without it. The architecture comes from the checkpoint (generator_config).
    recipe = gan.parse_args(["--mode", "train"])
    vars(recipe).update({"lambda_fm": 0.0, **config})
    adversarial = AdversarialLoss(config["gan_loss"])
    batch = random_batch(config["image_size"], config["batch_size"], config["crop_ratio"], accelerator.device)
    return timed(lambda: gan.train_step(batch, generator, discriminator, opt_g, opt_d, adversarial, perceptual,
                                        recipe, accelerator), steps, config["batch_size"], accelerator.device)


def diffusion_training_rate(config: dict, schedule_config: dict, accelerator, steps: int) -> float:
    """diffusion.train_step at the diffusion model's recipe."""
    from diffusers import DDPMScheduler
    model = build_diffusion_model(config)
    ema = make_diffusion_ema(model, config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config["lr"], weight_decay=0.0)
    model, optimizer = accelerator.prepare(model, optimizer)
    ema.to(accelerator.device)
    noise_scheduler, recipe = DDPMScheduler.from_config(schedule_config), diffusion.parse_args(["--mode", "train"])
    vars(recipe).update(config)
    batch = random_batch(config["image_size"], config["batch_size"], config["crop_ratio"], accelerator.device)
    return timed(lambda: diffusion.train_step(batch, model, ema, optimizer, noise_scheduler, recipe, accelerator),
                 steps, config["batch_size"], accelerator.device)


def hardware(device) -> str:
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    threads = torch.get_num_threads()
    text = f"{cpu}, {os.cpu_count()} logical CPUs, torch {torch.__version__} on {threads} thread{'s' * (threads != 1)}"
    if device.type == "cuda":
        text += f", GPU {torch.cuda.get_device_name(device)}"
    return text


def fmt(value, digits: int) -> str:
    return "" if value is None or value == "" else f"{value:.{digits}f}"


def load(loader, path, flag: str):
    """loader(path), with load errors naming this script's flag."""
    try:
        return loader(path)
    except InputError as exc:
        raise InputError(str(exc).replace("--checkpoint_path", flag)) from None


def main(args):
    list_images(args.test_dir)  # a wrong folder is refused before the timing and loading, not after them
    check_writable_folder(args.out_dir, "--out_dir")
    out_dir, device = Path(args.out_dir), eval_device(args.cpu)
    generator, gan_config = load(load_generator, args.gan_checkpoint, "--gan_checkpoint")
    model, diff_config, schedule_config = load(load_diffusion_model, args.diffusion_checkpoint,
                                               "--diffusion_checkpoint")
    crop_ratio = check_crop_ratio(gan_config["crop_ratio"])
    if diff_config["crop_ratio"] != crop_ratio:
        raise InputError(f"the checkpoints fill different gaps (--crop_ratio {crop_ratio} vs "
                         f"{diff_config['crop_ratio']}): train both with the same --crop_ratio")
    runs = parse_runs(args.steps, schedule_config["num_train_timesteps"], args.scheduler)
    torch.manual_seed(args.seed)

    # Training throughput, on this machine, with each script's own train_step.
    rates = {"gan": None, "diffusion": None}
    if args.timing_steps > 0:
        accelerator = make_accelerator(args.mixed_precision, args.cpu)
        print(f"timing {args.timing_steps} training steps of each model ...", flush=True)
        rates["gan"] = gan_training_rate(gan_config, accelerator, args.timing_steps)
        rates["diffusion"] = diffusion_training_rate(diff_config, schedule_config, accelerator, args.timing_steps)

    # Every method through the same eval code: (row, fill, image size, folder).
    methods = []
    for size in sorted({gan_config["image_size"], diff_config["image_size"]}):
        for key, fill in BASELINES.items():
            methods.append(({"method": f"{FLOOR_NAMES[key]} ({size}px)", "kind": "floor", "params_M": 0.0},
                            fill, size, f"{key}_{size}"))
    methods.append(({"method": f"GAN ({gan_config['image_size']}px)", "kind": "gan",
                     "params_M": count_parameters(generator) / 1e6, "train_images_per_s": rates["gan"]},
                    generator_fill(generator, device, args.mixed_precision), gan_config["image_size"], "gan"))
    for sampler, steps in runs:
        methods.append(({"method": f"diffusion {sampler} {steps} steps ({diff_config['image_size']}px)",
                         "kind": "diffusion", "sampler": sampler, "steps": steps,
                         "params_M": count_parameters(model) / 1e6, "train_images_per_s": rates["diffusion"]},
                        diffusion_fill(model, schedule_config, device, sampler, steps, args.seed, args.mixed_precision),
                        diff_config["image_size"],
                        f"diffusion_{sampler}_{steps}"))
    rows = []
    for row, fill, size, folder in methods:
        summary = evaluate_folder(fill, args.test_dir, size, crop_ratio, out_dir / folder, device,
                                  batch_size=args.batch_size, desc=row["method"])
        rows.append({"image_size": size, "train_images_per_s": None, **row,
                     **{k: summary[k] for k in COLUMNS if k in summary}})
        print(f"  {row['method']:42s} hole PSNR {summary['psnr_hole']:6.2f} dB  {summary['seconds_per_image']:8.3f} "
              "s/image", flush=True)
    num_images = summary["num_images"]

    # The performance target: default sampling >= 20x faster than the document's 1000 steps, PSNR >= .
    reference = next((r for r in rows if r.get("sampler") == "ddpm" and r["steps"] == schedule_config[
        "num_train_timesteps"]), None)
    fast = next((r for r in rows if r["kind"] == "diffusion" and r is not reference), None)
    if reference and fast:
        speedup = reference["seconds_per_image"] / fast["seconds_per_image"]
        gain = fast["psnr_hole"] - reference["psnr_hole"]
        check = (f"{fast['method']} vs {reference['method']}: {speedup:.1f}x faster (target >= 20x: "
                 f"{'PASS' if speedup >= 20 else 'FAIL'}), hole PSNR {fast['psnr_hole']:.2f} vs "
                 f"{reference['psnr_hole']:.2f} dB ({gain:+.2f} dB; target >= 0: {'PASS' if gain >= 0 else 'FAIL'})")
    else:
        check = "speed-up check skipped: --steps needs a fast entry and the 1000-step ddpm entry"
    print(check)

    # Table, CSV, plot.
    out_dir.mkdir(parents=True, exist_ok=True)
    write_csv_atomic([{k: r.get(k) for k in COLUMNS} for r in rows], COLUMNS, out_dir / "comparison.csv")
    colours = ["#999999" if r["kind"] == "floor" else "#d95f02" if r["kind"] == "gan" else "#1b9e77" for r in rows]
    plot_metrics(rows, out_dir / "comparison.png", colours)
    sizes = {gan_config["image_size"], diff_config["image_size"]}
    lines = [
        "| method | size | params (M) | train images/s | s / image | hole PSNR (dB) | low-pass hole PSNR | hole SSIM "
        "| sharpness | placement | patch SWD |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ] + [f"| {r['method']} | {r['image_size']} | {fmt(r['params_M'], 2)} | {fmt(r['train_images_per_s'], 1)} | "
         f"{fmt(r['seconds_per_image'], 3)} | {fmt(r['psnr_hole'], 2)} | {fmt(r['psnr_lowpass'], 2)} | "
         f"{fmt(r['ssim_hole'], 3)} | {fmt(r['sharpness'], 2)} | {fmt(r['placement'], 2)} | {fmt(r['swd'], 1)} |"
         for r in rows]
    notes = [
        f"Command: `python {shlex.join(['benchmarks/compare.py'] + args.argv)}`",
        f"Hardware: {hardware(device)}; autocast: {args.mixed_precision}; "
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC.",
        f"Test set: {num_images} images of `{args.test_dir}`, gap mask with crop ratio {crop_ratio}; eval batch "
        f"{args.batch_size}. Metrics on the 8-bit outputs, hole = generated region.",
        f"GAN: `{args.gan_checkpoint}` ({gan_config['image_size']}px, ngf {gan_config['ngf']}; its discriminator, used "
        f"only in training, is not counted). Diffusion: `{args.diffusion_checkpoint}` ({diff_config['image_size']}px, "
        "EMA weights, known pixels re-imposed at every step).",
        "Training images/s: timed `train_step` of each script on this machine at the checkpoint's image size and "
        "batch size" + (" (skipped)." if args.timing_steps <= 0 else f" ({args.timing_steps} steps after a warm-up)."),
    ]
    if len(sizes) > 1:
        notes.append(f"**The models run at different sizes ({' and '.join(f'{s}px' for s in sorted(sizes))}):** each "
                     "at its own checkpoint's size, on the same test photos (resized) and the same crop ratio; the "
                     "floors are given at both sizes. Compare each model with the floors of its own size.")
    text = "\n".join(["# GAN vs scratch diffusion", "", *lines, "", f"**Check:** {check}", "",
                      *[f"- {n}" for n in notes], "", "![comparison](comparison.png)", ""])
    (out_dir / "comparison.md").write_text(text)
    print(f"wrote {out_dir / 'comparison.md'}, comparison.csv, comparison.png")


if __name__ == "__main__":
    sys.exit(run(main, parse_args))

"""Training steps per second of a configs/ recipe at several batch sizes, on the GPU when there is one, and where
the time of a step goes: the figure that sets a lent GPU call's --batch_size and minutes.

    python benchmarks/bench_recipe_step.py --config configs/realistic_256.yaml --batch_sizes 8,16,32,64
    python benchmarks/bench_recipe_step.py --config configs/realistic_128.yaml --batch_sizes 8 --profile
    python benchmarks/bench_recipe_step.py --config configs/realistic_256.yaml --batch_sizes 32 -- --compile
    python benchmarks/bench_recipe_step.py --config configs/realistic_256.yaml --image_size 64 --cpu --steps 2

Times `main.train_step` exactly as `main.py --mode train --config FILE` runs it (the recipe's networks, losses,
optimizers and precision; extra main.py flags after `--` override the recipe) on one random batch already on the
device: no data loading, val or checkpoints, which a real run adds. --warmup steps, then --steps timed ones, with
the device synchronised around them. --profile adds torch.profiler's busiest operators by their own CPU time and
the number of GPU kernels per step: a step of many small kernels is bound by their launches, and a larger batch
then costs little more time.
"""
import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from utils.errors import InputError  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="a configs/ recipe (main.py --config)")
    parser.add_argument("--batch_sizes", default="8,16,32", help="comma-separated batch sizes to time")
    parser.add_argument("--image_size", type=int, default=None, help="override the recipe's image size")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first (cuDNN autotuning, allocator)")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per batch size")
    parser.add_argument("--profile", action="store_true", help="also profile one step per batch size")
    parser.add_argument("--cpu", action="store_true", help="time on the CPU even where a GPU is found")
    parser.add_argument("--threads", default="auto", help="torch threads, as main.py --threads")
    parser.add_argument("main_flags", nargs="*", help="after --: main.py flags that override the recipe")
    args = parser.parse_args(argv)
    try:
        args.batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    except ValueError:
        parser.error(f"--batch_sizes {args.batch_sizes!r}: give integers such as 8,16,32")
    if not Path(args.config).is_file():
        raise InputError(f"--config {args.config} not found (the recipes are in configs/)")
    if min(args.batch_sizes) < 1 or args.steps < 1 or args.warmup < 0:
        raise InputError("--batch_sizes and --steps must be >= 1, --warmup >= 0")
    return args


def main(args):
    import torch
    import main as gan
    from data.masks import masked_input
    from losses import AdversarialLoss, build_perceptual_loss
    from utils.hardware import configure_threads, resolve_mixed_precision
    from utils.training import make_accelerator

    flags = ["--mode", "train", "--config", args.config, *args.main_flags, "--threads", args.threads]
    if args.image_size:
        flags += ["--image_size", str(args.image_size)]
    if args.cpu:
        flags.append("--cpu")
    recipe = gan.parse_args(flags)
    threads = configure_threads(recipe.threads)
    recipe.mixed_precision = resolve_mixed_precision(recipe.mixed_precision, recipe.cpu)
    accelerator = make_accelerator(recipe.mixed_precision, recipe.cpu)
    device = accelerator.device
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {threads}"
    print(f"{args.config}{' ' + ' '.join(args.main_flags) if args.main_flags else ''}: "
          f"{recipe.image_size}², {name}, autocast {recipe.mixed_precision}")

    config = gan.run_config(recipe)
    generator, discriminator = gan.build_training_networks(config)
    opt_g, opt_d = gan.training_optimizers(generator, discriminator, recipe)
    generator, discriminator, opt_g, opt_d = accelerator.prepare(generator, discriminator, opt_g, opt_d)
    perceptual = None
    if recipe.lambda_perc:
        perceptual, note = build_perceptual_loss(recipe.perceptual, recipe.perceptual_weights)
        if perceptual is None:
            print(f"warning: timed without the perceptual loss: {note}", file=sys.stderr)
        else:
            perceptual = perceptual.to(device)
    adversarial = AdversarialLoss(recipe.gan_loss)
    # As main.train: with --compile (a main.py flag, after --) the step runs compiled copies sharing the weights;
    # each new batch size compiles again, in its untimed first steps.
    train_g, train_d = gan.compiled_networks(generator, discriminator, accelerator) if recipe.compile else \
        (generator, discriminator)

    def synchronize():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for batch_size in args.batch_sizes:
        image = torch.rand(batch_size, 3, recipe.image_size, recipe.image_size, device=device) * 2 - 1
        _, mask = masked_input(image, recipe.crop_ratio)  # (B, 1, S, S), 1 = generate
        batch = {"image": image, "mask": mask.contiguous()}

        def step():
            gan.train_step(batch, train_g, train_d, opt_g, opt_d, adversarial, perceptual, recipe,
                           accelerator, images_seen=10 ** 9)  # past the input blur's fade, as most of a run

        start = time.perf_counter()
        for _ in range(args.warmup):
            step()
        synchronize()
        warmup = time.perf_counter() - start
        start = time.perf_counter()
        for _ in range(args.steps):
            step()
        synchronize()
        seconds = (time.perf_counter() - start) / args.steps
        print(f"batch {batch_size:4d}: {seconds * 1000:8.1f} ms/step, {1 / seconds:6.2f} steps/s, "
              f"{batch_size / seconds:7.1f} images/s (the {args.warmup} untimed first steps: {warmup:.1f} s)")
        if args.profile:
            print_profile(step, device, synchronize)


def print_profile(step, device, synchronize, rows: int = 12) -> None:
    """One profiled step: the operators with the most CPU time of their own, and the GPU kernels launched."""
    from torch.profiler import ProfilerActivity, profile
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        step()
        synchronize()
    events = prof.key_averages()
    print(events.table(sort_by="self_cpu_time_total", row_limit=rows))
    operators = sum(e.count for e in events if e.key.startswith("aten::"))
    kernels = sum(e.count for e in events if e.device_type.name == "CUDA")
    print(f"in the step: {operators} aten operator calls" + (f", {kernels} GPU kernels" if kernels else ""))


if __name__ == "__main__":
    from utils.cli import run
    sys.exit(run(main, parse_args))

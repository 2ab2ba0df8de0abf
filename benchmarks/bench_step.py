"""Seconds per training step of main.py's *default* recipe, for a thread count, idle or with a busy core.

    python benchmarks/bench_step.py --image_size 128 --ngf 32 --threads 2
    python benchmarks/bench_step.py --image_size 128 --ngf 32 --threads 1 --busy   # another process spins on a core
    OMP_WAIT_POLICY=PASSIVE python benchmarks/bench_step.py --image_size 128 --ngf 32 --threads 2

Times `main.train_step` (harmonic start, EfficientNet-Lite0 perceptual loss, discriminator, feature
matching; every flag at main.py's default except the ones given here) on one random batch already in
memory: --warmup steps, then the mean of --steps. `--busy` starts a process that keeps one core busy
for the whole measurement, as a second job on a shared machine would. These are the figures behind
`--threads auto` (docs/speed.md).
"""
import argparse
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import main as gan  # noqa: E402
from data.masks import masked_input  # noqa: E402
from losses import AdversarialLoss, build_perceptual_loss  # noqa: E402
from utils.errors import InputError  # noqa: E402
from utils.training import make_accelerator  # noqa: E402

SPIN = "import time\nwhile True: pass"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image_size", type=int, default=128)
    parser.add_argument("--ngf", type=int, default=32)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--mixed_precision", default="bf16", choices=("no", "bf16", "fp16"))
    parser.add_argument("--busy", action="store_true", help="keep one core busy with another process meanwhile")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--steps", type=int, default=3)
    return parser.parse_args(argv)


def main(args):
    if args.steps < 1 or args.warmup < 0 or args.threads < 1:
        raise InputError(f"--steps and --threads must be >= 1 and --warmup >= 0, got {args.steps}, {args.threads} "
                         f"and {args.warmup}")
    torch.set_num_threads(args.threads)
    recipe = gan.parse_args(["--mode", "train", "--image_size", str(args.image_size), "--ngf", str(args.ngf),
                             "--batch_size", str(args.batch_size), "--mixed_precision", args.mixed_precision,
                             "--cpu"])
    accelerator = make_accelerator(recipe.mixed_precision, recipe.cpu)
    generator, discriminator = gan.build_training_networks(vars(recipe))
    opt_g = torch.optim.Adam(generator.parameters(), lr=recipe.lr, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=recipe.lr, betas=(0.5, 0.999))
    generator, discriminator, opt_g, opt_d = accelerator.prepare(generator, discriminator, opt_g, opt_d)
    perceptual, _ = build_perceptual_loss(recipe.perceptual)
    image = torch.rand(args.batch_size, 3, args.image_size, args.image_size) * 2 - 1
    _, mask = masked_input(image, recipe.crop_ratio)
    batch = {"image": image, "mask": mask.contiguous()}

    def step():
        gan.train_step(batch, generator, discriminator, opt_g, opt_d, AdversarialLoss(recipe.gan_loss), perceptual,
                       recipe, accelerator)

    spinner = subprocess.Popen([sys.executable, "-c", SPIN]) if args.busy else None
    try:
        for _ in range(args.warmup):
            step()
        start = time.perf_counter()
        for _ in range(args.steps):
            step()
        seconds = (time.perf_counter() - start) / args.steps
    finally:
        if spinner is not None:
            spinner.kill()
            spinner.wait()
    print(f"{args.image_size}^2, ngf {args.ngf}, batch {args.batch_size}, {args.threads} thread(s), "
          f"{args.mixed_precision}, {'one core busy' if args.busy else 'idle'}: {seconds:.2f} s/step")


if __name__ == "__main__":
    from utils.cli import run
    sys.exit(run(main, parse_args))

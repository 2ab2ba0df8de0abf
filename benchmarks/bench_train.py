"""Training throughput, peak memory and eval_2 latency of the GAN at the document's configuration.

    python benchmarks/bench_train.py                      # 256^2, batch 16, ngf 64: all variants
    python benchmarks/bench_train.py --variants ours --mixed_precision bf16 --steps 5
    python benchmarks/bench_train.py --whole_process      # python main.py vs the reference, idle
    python benchmarks/bench_train.py --whole_process --busy   # ... with one core busy meanwhile

--whole_process times two programs from start to exit on the same --photos photos of --train_dir,
one epoch, perceptual term off (the document's configuration): `python main.py --mode train` with
its default flags, and benchmarks/reference_train.py, a straightforward trainer of the same recipe
(fp32, default threads, two generator forwards per step, D's gradients during G's backward). It
prints both wall-clock times and their ratio; --busy keeps one core spinning in another process
during both, as a second job on a shared machine would.

Every variant trains main.py's default recipe (architecture and loss weights; perceptual term off
unless said) at --image_size / --ngf / --batch_size. Variants (each in its own subprocess, so that
peak memory is its own):
  baseline       the straightforward implementation (benchmarks/reference_train.py): fp32, NCHW,
                 generator run twice per step (once for D's loss, once for G's), gradients computed
                 for D's weights during G's backward;
  ours           main.py's `train_step`: one generator forward, channels_last G, D and batches, D frozen during
                 G's backward, under --mixed_precision autocast (bf16 on AVX-512-BF16 CPUs);
  ours+compile   the same with `--compile` (torch.compile of G and D; compilation not timed);
  ours+perc      `ours` with the VGG19 perceptual term (random VGG weights: speed is the same).
(--whole_process, below, includes start-up, data decoding, samples and checkpoints.)
Data are random tensors already in memory (main.py decodes each file once, so its data time is ~0).
Prints images/s, peak memory (max RSS on CPU, max allocated on CUDA) and the eval_2 latency.
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--image_size", type=int, default=256)
    p.add_argument("--batch_size", type=int, default=16)
    p.add_argument("--ngf", type=int, default=64)
    p.add_argument("--steps", type=int, default=3, help="timed steps per variant (after --warmup)")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--mixed_precision", choices=("no", "bf16", "fp16"), default="bf16", help="for 'ours'")
    p.add_argument("--variants", default="baseline,ours,ours+compile,ours+perc")
    p.add_argument("--cpu", action="store_true")
    p.add_argument("--whole_process", action="store_true", help="time main.py against the reference trainer")
    p.add_argument("--train_dir", default=str(ROOT / "data" / "scenery_large" / "train"),
                   help="--whole_process: photos to train on (build with tools/build_scenery_set.py)")
    p.add_argument("--photos", type=int, default=64, help="--whole_process: the first N photos of --train_dir")
    p.add_argument("--busy", action="store_true", help="--whole_process: keep one core busy meanwhile")
    p.add_argument("--worker", help=argparse.SUPPRESS)  # internal: run one variant, print JSON
    return p.parse_args(argv)


def run_variant(args, variant: str) -> dict:
    import torch
    from accelerate import Accelerator
    from torchvision.models import vgg19

    import main as gan
    from benchmarks.reference_train import straightforward_step
    from data.masks import masked_input
    from losses import AdversarialLoss, VGGPerceptualLoss
    from main import train_step
    from models import PatchDiscriminator
    from utils.loading import build_generator
    from utils.training import run_config

    torch.manual_seed(0)
    ours = variant.startswith("ours")
    if ours:  # as main.py does for training
        from utils.hardware import keep_freed_memory
        keep_freed_memory()
    accelerator = Accelerator(mixed_precision=args.mixed_precision if ours else "no", cpu=args.cpu)
    device = accelerator.device
    # main.py's default recipe (architecture and loss weights) at this size and width.
    recipe = gan.parse_args(["--mode", "train", "--image_size", str(args.image_size), "--ngf", str(args.ngf),
                             "--batch_size", str(args.batch_size), "--perceptual", "none"])
    config = run_config(recipe)
    G, D = gan.build_training_networks(config) if ours else (build_generator(config), PatchDiscriminator(ndf=recipe.ndf))
    opt_g = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
    G, D, opt_g, opt_d = accelerator.prepare(G, D, opt_g, opt_d)
    perceptual = VGGPerceptualLoss(vgg19(weights=None).features).to(device) if variant == "ours+perc" else None
    adversarial = AdversarialLoss(recipe.gan_loss)
    image = torch.rand(args.batch_size, 3, args.image_size, args.image_size, device=device) * 2 - 1
    _, mask = masked_input(image, 0.4)
    batch = {"image": image, "mask": mask.contiguous()}

    def baseline_step():
        straightforward_step(batch, G, D, opt_g, opt_d, adversarial, None, recipe)

    train_g, train_d = (torch.compile(G), torch.compile(D)) if variant == "ours+compile" else (G, D)

    def step():
        if ours:
            train_step(batch, train_g, train_d, opt_g, opt_d, adversarial, perceptual, recipe, accelerator)
        else:
            baseline_step()

    warm_start = time.perf_counter()
    for _ in range(args.warmup + (1 if variant == "ours+compile" else 0)):  # compiles on the first calls
        step()
    warmup_seconds = time.perf_counter() - warm_start
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    result = {"variant": variant, "images_per_s": args.batch_size * args.steps / seconds,
              "seconds_per_step": seconds / args.steps, "device": str(device), "warmup_seconds": warmup_seconds}
    if device.type == "cuda":
        result["peak_memory_gib"] = torch.cuda.max_memory_allocated() / 2 ** 30
    else:
        result["peak_memory_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20
    if variant == "ours":  # eval_2 latency: one 256^2 fill, as main.py runs it
        from utils.loading import generator_fill
        fill = generator_fill(accelerator.unwrap_model(G).eval(), device, args.mixed_precision)
        one_masked, one_mask = image[:1] * (1 - mask[:1]), mask[:1]
        fill(one_masked, one_mask)
        times = []
        for _ in range(5):
            start = time.perf_counter()
            fill(one_masked, one_mask)
            if device.type == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
        result["eval_2_fill_seconds"] = sorted(times)[len(times) // 2]
    return result


def whole_process(args) -> None:
    """Wall-clock time of `python main.py --mode train` (default flags) and of the reference trainer."""
    import tempfile

    from benchmarks.bench_infer import wall_seconds
    from benchmarks.bench_step import SPIN
    from data.images import list_images
    photos = list_images(args.train_dir)[:args.photos]
    common = ["--image_size", str(args.image_size), "--batch_size", str(args.batch_size), "--ngf", str(args.ngf),
              "--perceptual", "none", "--epochs", "1"]
    print(f"whole process: {len(photos)} photos of {args.train_dir}, {args.image_size}^2, batch {args.batch_size}, "
          f"ngf {args.ngf}, perceptual off, 1 epoch; {os.cpu_count()} CPUs, "
          f"{'one core busy with another process' if args.busy else 'idle machine'}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "photos"
        data.mkdir()
        for i, photo in enumerate(photos):
            (data / f"{i:03d}{photo.suffix.lower()}").symlink_to(photo.resolve())
        env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}  # each program picks its threads
        runs = {"main.py (default flags)": [sys.executable, str(ROOT / "main.py"), "--mode", "train",
                                            "--train_dir", str(data), *common, "--checkpoint_dir",
                                            f"{tmp}/main", "--results_dir", f"{tmp}/main"],
                "reference trainer": [sys.executable, str(ROOT / "benchmarks" / "reference_train.py"),
                                      "--train_dir", str(data), *common, "--out", f"{tmp}/reference"]}
        seconds = {}
        spinner = subprocess.Popen([sys.executable, "-c", SPIN]) if args.busy else None
        try:
            for name, cmd in runs.items():
                seconds[name] = wall_seconds(cmd, env=env)
                print(f"  {name:24s} {seconds[name]:7.1f} s", flush=True)
        finally:
            if spinner is not None:
                spinner.kill()
                spinner.wait()
    print(f"  speed-up of main.py over the reference: {seconds['reference trainer'] / seconds['main.py (default flags)']:.2f}x")


def main(args):
    if args.whole_process:
        return whole_process(args)
    if args.worker:
        print(json.dumps(run_variant(args, args.worker)))
        return
    import torch
    print(f"GAN training benchmark: {args.image_size}^2, batch {args.batch_size}, ngf {args.ngf}, "
          f"{args.steps} timed steps; torch {torch.__version__}, {os.cpu_count()} CPUs, "
          f"cuda={torch.cuda.is_available() and not args.cpu}")
    results = []
    for variant in args.variants.split(","):
        cmd = [sys.executable, __file__, "--worker", variant] + [a for a in sys.argv[1:]]
        worker = subprocess.run(cmd, capture_output=True, text=True)
        if worker.returncode:  # its own one-line error (a bad flag, say), not a CalledProcessError
            raise SystemExit((worker.stderr.strip().splitlines() or [f"error: the {variant} worker failed"])[-1])
        results.append(json.loads(worker.stdout.strip().splitlines()[-1]))
        r = results[-1]
        extra = f", eval_2 fill {r['eval_2_fill_seconds'] * 1000:.0f} ms" if "eval_2_fill_seconds" in r else ""
        print(f"  {variant:13s} {r['images_per_s']:6.2f} images/s ({r['seconds_per_step']:.2f} s/step), "
              f"peak memory {r['peak_memory_gib']:.2f} GiB, warm-up steps {r['warmup_seconds']:.1f} s{extra}",
              flush=True)
    base = next((r for r in results if r["variant"] == "baseline"), None)
    for r in results:
        if base and r is not base:
            print(f"  speed-up of {r['variant']} over baseline: {r['images_per_s'] / base['images_per_s']:.2f}x")


if __name__ == "__main__":
    from utils.cli import run
    sys.exit(run(main, parse_args))

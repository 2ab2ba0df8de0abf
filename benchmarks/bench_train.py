"""Training throughput, peak memory and eval_2 latency of the GAN at the document's configuration.

    python benchmarks/bench_train.py                      # 256^2, batch 16, ngf 64: all variants
    python benchmarks/bench_train.py --variants ours --mixed_precision bf16 --steps 5

Variants (each in its own subprocess, so that peak memory is its own):
  baseline       the straightforward recipe: fp32, NCHW, generator run twice per step (once for
                 D's loss, once for G's), gradients computed for D's weights during G's backward;
  ours           main.py's `train_step`: one generator forward, channels_last, D frozen during
                 G's backward, under --mixed_precision autocast (bf16 on AVX-512-BF16 CPUs);
  ours+compile   the same with `--compile` (torch.compile of G and D; compilation not timed);
  ours+perc      `ours` with the VGG19 perceptual term (random VGG weights: speed is the same).
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


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
    p.add_argument("--worker", help=argparse.SUPPRESS)  # internal: run one variant, print JSON
    return p.parse_args(argv)


def run_variant(args, variant: str) -> dict:
    import torch
    from accelerate import Accelerator
    from torchvision.models import vgg19

    from data.masks import masked_input
    from losses import AdversarialLoss, VGGPerceptualLoss, hole_l1, ssim_loss
    from main import train_step
    from models import PatchDiscriminator, UNetGenerator

    torch.manual_seed(0)
    ours = variant.startswith("ours")
    accelerator = Accelerator(mixed_precision=args.mixed_precision if ours else "no", cpu=args.cpu)
    device = accelerator.device
    G, D = UNetGenerator(args.image_size, args.ngf), PatchDiscriminator()
    if ours:
        G = G.to(memory_format=torch.channels_last)  # as main.py does
    opt_g = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
    G, D, opt_g, opt_d = accelerator.prepare(G, D, opt_g, opt_d)
    perceptual = VGGPerceptualLoss(vgg19(weights=None).features).to(device) if variant == "ours+perc" else None
    adversarial = AdversarialLoss("bce")
    lambdas = argparse.Namespace(lambda_l1=100.0, lambda_ssim=1.0, lambda_perc=1.0, lambda_adv=1.0,
                                 lambda_fm=0.0)  # the document's recipe: no feature matching
    image = torch.rand(args.batch_size, 3, args.image_size, args.image_size, device=device) * 2 - 1
    _, mask = masked_input(image, 0.4)
    batch = {"image": image, "mask": mask.contiguous()}

    def baseline_step():
        masked = image * (1 - mask)
        opt_d.zero_grad()
        fake = G(masked, mask)
        d_real, d_fake = adversarial.discriminator(D(masked, mask, image), D(masked, mask, fake.detach()))
        (0.5 * (d_real + d_fake)).backward()
        opt_d.step()
        opt_g.zero_grad()
        fake = G(masked, mask)  # second generator forward, as in the straightforward implementation
        loss = 100 * hole_l1(fake, image, mask) + ssim_loss(fake, image) + adversarial.generator(D(masked, mask, fake))
        loss.backward()
        opt_g.step()

    train_g, train_d = (torch.compile(G), torch.compile(D)) if variant == "ours+compile" else (G, D)

    def step():
        if ours:
            train_step(batch, train_g, train_d, opt_g, opt_d, adversarial, perceptual, lambdas, accelerator)
        else:
            baseline_step()

    for _ in range(args.warmup + (1 if variant == "ours+compile" else 0)):  # compiles on the first calls
        step()
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
              "seconds_per_step": seconds / args.steps, "device": str(device)}
    if device.type == "cuda":
        result["peak_memory_gib"] = torch.cuda.max_memory_allocated() / 2 ** 30
    else:
        result["peak_memory_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20
    if variant == "ours":  # eval_2 latency: one 256^2 fill, as main.py runs it
        from models.loading import generator_fill
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


def main(args):
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
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
        results.append(json.loads(out))
        r = results[-1]
        extra = f", eval_2 fill {r['eval_2_fill_seconds'] * 1000:.0f} ms" if "eval_2_fill_seconds" in r else ""
        print(f"  {variant:13s} {r['images_per_s']:6.2f} images/s ({r['seconds_per_step']:.2f} s/step), "
              f"peak memory {r['peak_memory_gib']:.2f} GiB{extra}", flush=True)
    base = next((r for r in results if r["variant"] == "baseline"), None)
    for r in results:
        if base and r is not base:
            print(f"  speed-up of {r['variant']} over baseline: {r['images_per_s'] / base['images_per_s']:.2f}x")


if __name__ == "__main__":
    main(parse_args())

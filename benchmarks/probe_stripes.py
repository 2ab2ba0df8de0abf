"""How much of a fill's fine detail is axis-aligned stripes (the tartan of runs 22-23, docs/realistic_fills.md)? Prints a
markdown table (a benchmark, not a test).

    python benchmarks/probe_stripes.py --test_dir data/scenery_large/val \\
        --checkpoint shipped=checkpoints/gan_scenery_128.pth --checkpoint run23=runs/run23/checkpoint_epoch_3.pth

Per method: `utils.metrics.stripe_share` (the share of the hole's fine detail, in 16-px tiles, carried by column
and row means: about 2/16 for isotropic texture, 1 for pure stripes), its mean over the photos beside the truth's,
and the fine detail's RMS relative to the truth's (a share of almost no detail, as in a smooth fill, means little).
A generator with injected noise (--noise_injection) is scored a second time with its noise strengths set to zero,
to tell stripes drawn from the noise from stripes the network draws anyway.
"""
import argparse
import copy
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def parse_args(argv=None):
    from utils.cli import add_probe_args
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_probe_args(parser, floors="harmonic,telea,shiftmap")
    return parser.parse_args(argv)


def main(args):
    from utils.cli import floor_names, labelled_checkpoints
    checkpoints = labelled_checkpoints(args.checkpoint)
    floors = floor_names(args.floors)
    import torch
    from utils.evaluation import probe_inputs, quantize
    from utils.metrics import fine_detail, stripe_share

    def noise_free(label, generator):  # a copy with its noise strengths at zero (and their size printed)
        if generator.noise_strength is None:
            return []
        strengths = torch.cat([s.detach().abs().flatten() for s in generator.noise_strength.values()])
        print(f"{label}: noise strengths |s| mean {strengths.mean():.4f}, max {strengths.max():.4f}")
        silent = copy.deepcopy(generator)
        with torch.no_grad():
            for strength in silent.noise_strength.values():
                strength.zero_()
        return [(f"{label}, noise strengths set to 0", silent)]

    batches, methods = probe_inputs(args.test_dir, args.image_size, args.crop_ratio, args.batch_size, floors,
                                    checkpoints, noise_free)

    def fine_rms(image, mask):  # (B,) RMS of the detail stripe_share measures, over the hole
        return ((fine_detail(image) ** 2 * mask).sum(dim=(1, 2, 3)) / mask.sum(dim=(1, 2, 3)).clamp_min(1)).sqrt()

    truth_share = torch.cat([stripe_share((truth + 1) / 2, mask) for truth, mask, _ in batches])
    truth_rms = torch.cat([fine_rms((truth + 1) / 2, mask) for truth, mask, _ in batches])
    print(f"| method ({len(truth_share)} photos of {args.test_dir}) | stripe share | fine detail RMS / truth's |")
    print("|---|---|---|")
    print(f"| the truth | {truth_share.mean():.2f} | 1.00 |")
    for name, fill in methods:
        shares, rms = [], []
        for truth, mask, masked in batches:
            with torch.no_grad():
                output = (quantize(fill(masked, mask).float()) + 1) / 2  # to 8 bits, as eval scores a fill
            shares.append(stripe_share(output, mask))
            rms.append(fine_rms(output, mask))
        print(f"| {name} | {torch.cat(shares).mean():.2f} | {torch.cat(rms).sum() / truth_rms.sum():.2f} |")


if __name__ == "__main__":
    from utils.cli import run
    sys.exit(run(main, parse_args))

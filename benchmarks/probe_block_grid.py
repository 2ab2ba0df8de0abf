"""Is a fill's texture aligned to the pixel grid (4-8 px blocks from nearest-neighbour upsampling in the decoder,
docs/realistic_fills.md, "Block-aligned texture")? Prints a markdown table (a benchmark, not a test).

    python benchmarks/probe_block_grid.py --test_dir data/scenery_large/val \\
        --checkpoint shipped=checkpoints/gan_scenery_128.pth --checkpoint run58=runs/run58/checkpoint_epoch_6.pth

Per method: `utils.metrics.grid_phase_profile` (the hole's mean |step| between neighbouring pixels by the step's
position modulo 8, averaged over the photos, as a share of its mean) and its `grid_contrast` ((max - min) / mean:
a photo's is its sampling noise). `--upsampling bilinear` scores each generator a second time with its decoder's
nearest-neighbour upsampling swapped for bilinear, untrained: where its texture came from.
"""
import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def parse_args(argv=None):
    from utils.cli import add_probe_args
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_probe_args(parser, floors="harmonic,shiftmap")
    parser.add_argument("--period", type=int, default=8, help="positions modulo this many pixels")
    parser.add_argument("--upsampling", choices=("bilinear",), default=None,
                        help="also score each resize generator with this upsampling, untrained")
    return parser.parse_args(argv)


def main(args):
    from utils.cli import floor_names, labelled_checkpoints
    from utils.errors import InputError
    if args.period < 2:
        raise InputError(f"--period {args.period}: needs at least 2 positions")
    checkpoints = labelled_checkpoints(args.checkpoint)
    floors = floor_names(args.floors)
    import torch
    from utils.evaluation import probe_inputs, quantize
    from utils.loading import build_generator, model_args
    from utils.metrics import grid_contrast, grid_phase_profile

    def swapped(label, generator):  # the same weights with the other resize upsampling, untrained
        if not args.upsampling or generator.config.upsampling != "resize":
            return []
        copy = build_generator({}, {**model_args(generator), "upsampling": args.upsampling})  # the architecture alone
        copy.load_state_dict(generator.state_dict())
        return [(f"{label}, {args.upsampling} upsampling (untrained)", copy.eval())]

    batches, methods = probe_inputs(args.test_dir, args.image_size, args.crop_ratio, args.batch_size, floors,
                                    checkpoints, swapped)

    def row(name, profiles):
        profile = profiles.mean(dim=0)
        shares = " ".join(f"{v:.2f}" for v in profile / profile.mean())
        print(f"| {name} | {grid_contrast(profiles):.3f} | {shares} |")

    photos = sum(len(truth) for truth, _, _ in batches)
    print(f"| method ({photos} photos of {args.test_dir}) | grid contrast | mean |step| by position mod {args.period}, "
          "/ mean |")
    print("|---|---|---|")
    row("the truth", torch.cat([grid_phase_profile((truth + 1) / 2, mask, args.period)
                                for truth, mask, _ in batches]))
    for name, fill in methods:
        profiles = []
        for truth, mask, masked in batches:
            with torch.no_grad():
                output = (quantize(fill(masked, mask).float()) + 1) / 2  # to 8 bits, as eval scores a fill
            profiles.append(grid_phase_profile(output, mask, args.period))
        row(name, torch.cat(profiles))


if __name__ == "__main__":
    from utils.cli import run
    sys.exit(run(main, parse_args))

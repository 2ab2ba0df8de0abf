"""Is a fill's texture aligned to the pixel grid (4-8 px blocks from nearest-neighbour upsampling in the decoder,
docs/model_card.md, "Block-aligned texture")? Prints a markdown table (a benchmark, not a test).

    python benchmarks/probe_block_grid.py --test_dir data/scenery_large/val \
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
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--test_dir", required=True, help="folder of photos (a validation split)")
    parser.add_argument("--checkpoint", action="append", default=[], metavar="[LABEL=]PATH",
                        help="a generator (training checkpoint: its EMA weights, or an export); repeatable")
    parser.add_argument("--floors", default="harmonic,shiftmap", help="training-free fills to score too")
    parser.add_argument("--period", type=int, default=8, help="positions modulo this many pixels")
    parser.add_argument("--upsampling", choices=("bilinear",), default=None,
                        help="also score each resize generator with this upsampling, untrained")
    parser.add_argument("--image_size", type=int, default=128)
    parser.add_argument("--crop_ratio", type=float, default=0.4)
    parser.add_argument("--batch_size", type=int, default=15)
    args = parser.parse_args(argv)
    if args.period < 2:
        parser.error(f"--period {args.period}: at least 2")
    return args


def main(args):
    from utils.cli import floor_names, labelled_checkpoints
    checkpoints = labelled_checkpoints(args.checkpoint)
    floors = floor_names(args.floors)
    import torch
    from data.datasets import ImageFolderDataset, masked_batches
    from models.baselines import BASELINES
    from utils.evaluation import quantize
    from utils.loading import build_generator, load_generator, model_args
    from utils.metrics import grid_contrast, grid_phase_profile

    dataset = ImageFolderDataset(args.test_dir, args.image_size, args.crop_ratio, train=False)
    batches = list(masked_batches(dataset, range(len(dataset.files)), args.batch_size))
    methods = [(name, BASELINES[name]) for name in floors]
    for label, path in checkpoints:
        generator, config = load_generator(path)
        methods.append((label, generator))
        if args.upsampling and generator.config.upsampling == "resize":
            swapped = build_generator(config, {**model_args(generator), "upsampling": args.upsampling})
            swapped.load_state_dict(generator.state_dict())
            methods.append((f"{label}, {args.upsampling} upsampling (untrained)", swapped.eval()))

    def row(name, profiles):
        profile = profiles.mean(dim=0)
        shares = " ".join(f"{v:.2f}" for v in profile / profile.mean())
        print(f"| {name} | {grid_contrast(profiles):.3f} | {shares} |")

    print(f"| method ({len(dataset.files)} photos of {args.test_dir}) | grid contrast | mean |step| by position "
          f"mod {args.period}, / mean |")
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

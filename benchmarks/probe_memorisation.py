"""Does a fill paste what the generator saw in training? Prints a markdown table (a benchmark, not a test).

    python benchmarks/probe_memorisation.py --train_dir data/scenery_large/train --test_dir data/scenery_large/val \\
        --checkpoint shipped=checkpoints/gan_scenery_128.pth --checkpoint "run 29=runs/scratch128/checkpoint_epoch_70.pth"

A generator trained long on a few hundred photos can learn them by heart and paint them into other scenes: are the
arches that run 29 draws over a held-out meadow copied from the training set, or drawn anew (docs/realistic_fills.md)? The
test, after
Meehan et al. 2020 ("A non-parametric test to evaluate generative models for data-copying"): take the fill's
24-px windows wholly inside the hole (every --query_stride px), each pooled to 8 x 8 RGB (its structure, not its
grain: `utils.realism.structure_patches`), and find the nearest window of two banks of as many photos each, at
the eval crop's scale and at twice it (the training crops span both): photos the generator was trained on
(--draws random draws of as many training photos) and photos it never saw (the other photos of --test_dir: leave
one out). The copying share is the share of the fill's windows that are nearer the training bank
(`utils.realism.copying_share`): about 0.5 for the truth and for any fill that copies nothing from training,
smooth or not; above it, the fill holds training content. Beside it the mean nearest distance to each bank
(RMS, [-1, 1] units). Slow: every method's windows against every bank photo, in fp32 (docs/realism_metrics.md has
the time).
"""
import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def parse_args(argv=None):
    from utils.cli import add_probe_args
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train_dir", required=True, help="the photos the generators were trained on")
    add_probe_args(parser, floors="harmonic,shiftmap")
    parser.add_argument("--query_stride", type=int, default=12, help="px between the fill's windows")
    parser.add_argument("--draws", type=int, default=5, help="random draws of the training bank's photos")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def main(args):
    from utils.cli import floor_names, labelled_checkpoints
    from utils.errors import InputError
    checkpoints = labelled_checkpoints(args.checkpoint)
    floors = floor_names(args.floors)
    for flag, folder in (("--train_dir", args.train_dir), ("--test_dir", args.test_dir)):
        if not Path(folder).is_dir():
            raise InputError(f"{flag} {folder}: not a folder")
    if args.query_stride < 6 or args.query_stride % 3:
        raise InputError(f"--query_stride must be a multiple of 3 and >= 6, got {args.query_stride}")
    import torch
    from tqdm import tqdm
    from data.datasets import ImageFolderDataset
    from utils.evaluation import probe_inputs, quantize
    from utils.realism import copying_share, nearest_distances, structure_patches

    def bank(folder):  # per photo: its windows at the eval crop's scale and at twice it, (n, 192)
        per_size = []
        for size in (args.image_size, 2 * args.image_size):
            dataset = ImageFolderDataset(folder, size, args.crop_ratio, train=False)
            images = torch.stack([dataset[i]["image"] for i in range(len(dataset.files))])
            per_size.append(structure_patches(images))
        return [torch.cat(parts) for parts in zip(*per_size)]

    unseen_bank, train_bank = bank(args.test_dir), bank(args.train_dir)
    if len(unseen_bank) < 2 or len(train_bank) < len(unseen_bank) - 1:
        raise InputError(f"need at least 2 photos in --test_dir and as many in --train_dir (found "
                         f"{len(unseen_bank)} and {len(train_bank)})")

    batches, methods = probe_inputs(args.test_dir, args.image_size, args.crop_ratio, args.batch_size, floors,
                                    checkpoints)
    fills = {"the truth": [truth for truth, _, _ in batches]}
    for name, fill in methods:
        with torch.no_grad():
            fills[name] = [quantize(fill(masked, mask).float()) for _, mask, masked in batches]
    masks = torch.cat([mask for _, mask, _ in batches])

    # Every method's windows, with the photo each comes from; then per bank photo the nearest distance of each.
    queries, owner, method_of = [], [], []
    for m, (name, images) in enumerate(fills.items()):
        for k, patches in enumerate(structure_patches(torch.cat(images), stride=args.query_stride, mask=masks)):
            queries.append(patches)
            owner += [k] * len(patches)
            method_of += [m] * len(patches)
    queries, owner, method_of = torch.cat(queries), torch.tensor(owner), torch.tensor(method_of)
    to_unseen = torch.stack([nearest_distances(queries, b) for b in tqdm(unseen_bank, desc="unseen photos")], 1)
    to_train = torch.stack([nearest_distances(queries, b) for b in tqdm(train_bank, desc="training photos")], 1)
    # Leave one out: a window is never matched against its own photo, and the training bank has as many photos.
    to_unseen[torch.arange(len(queries)), owner] = float("inf")
    unseen_nearest = to_unseen.min(1).values
    generator = torch.Generator().manual_seed(args.seed)
    draws = [torch.randperm(len(train_bank), generator=generator)[:len(unseen_bank) - 1] for _ in range(args.draws)]
    train_nearest = [to_train[:, draw].min(1).values for draw in draws]

    photos = sum(len(truth) for truth, _, _ in batches)
    print(f"| method ({photos} photos of {args.test_dir}; banks of {len(unseen_bank) - 1} photos) | "
          f"copying share | nearest training window | nearest unseen window |")
    print("|---|---|---|---|")
    for m, name in enumerate(fills):
        rows = method_of == m
        shares = [copying_share(nearest[rows], unseen_nearest[rows]) for nearest in train_nearest]
        spread = (max(shares) - min(shares)) / 2
        train_mean = sum(float(n[rows].mean()) for n in train_nearest) / len(train_nearest)
        print(f"| {name} | {sum(shares) / len(shares):.3f} ± {spread:.3f} | {train_mean:.3f} | "
              f"{float(unseen_nearest[rows].mean()):.3f} |")
    print(f"({int((method_of == 0).sum())} windows per method; ± half the range over {args.draws} training-bank draws)")


if __name__ == "__main__":
    from utils.cli import run
    sys.exit(run(main, parse_args))

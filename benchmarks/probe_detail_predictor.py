"""Can a small trained head say where the truth has detail better than the training-free maps? (issue 17,
docs/realistic_fills.md). Prints markdown rows (a benchmark, not a test).

    python benchmarks/probe_detail_predictor.py --train_dir data/scenery_large/train --val_dir data/scenery_large/val

The detail placement target (>= 0.35) asks a fill to put its detail where the truth has it. No fill so far
placed better than ~0.31 (the shipped generator's own block detail); the known squares' detail carried into the
hole gives 0.27 (benchmarks/probe_detail_placement.py). This probe trains `models.detail_map.DetailMapHead` on
frozen per-block inputs of the shipped generator's fill (`detail_map_inputs`: by default its own block detail,
the prior, the block colour, the hole fraction and the position; --inputs s8,s16,s32 add EfficientNet-Lite0
features of the fill) to predict the truth's 8x8 block detail (mean |Laplacian|, utils/realism.block_detail)
by the scale-free correlation loss (`losses.block_correlation_loss`: the metric itself). Inputs are computed
once for --crops random crops of each training photo but the last --holdout (random scale and flip, gap mask),
for those held-out photos and for the validation photos (centre crops, as eval does); the head trains on them
for --epochs, the epoch is chosen on the held-out training photos, and its validation correlation is printed.
--save writes that epoch's head for benchmarks/probe_placed_exemplar.py. --train_photos N trains on the crops of a
random N of the training photos only (the held-out and validation photos unchanged): how placement grows with data.
"""
import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models.options import DETAIL_MAP_GROUPS  # noqa: E402  (torch-free: the parser refuses a bad group at once)

GROUP_NAMES = tuple(DETAIL_MAP_GROUPS)


def input_groups(text: str) -> list:
    """argparse type: a comma-separated list of GROUP_NAMES."""
    groups = [g for g in text.split(",") if g]
    unknown = [g for g in groups if g not in GROUP_NAMES]
    if unknown or not groups:
        raise argparse.ArgumentTypeError(f"unknown input group(s) {unknown or text!r}; "
                                         f"choose from {','.join(GROUP_NAMES)}")
    return groups


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train_dir", required=True, help="folder of training photos")
    parser.add_argument("--val_dir", required=True, help="folder of validation photos")
    parser.add_argument("--checkpoint", default=str(ROOT / "checkpoints/gan_scenery_128.pth"),
                        help="the generator whose fill the head looks at (training checkpoint or export)")
    parser.add_argument("--crops", type=int, default=6, help="random crops per training photo")
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--width", type=int, default=64, help="the head's channels")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--objective", choices=("correlation", "log_ratio"), default="correlation",
                        help="correlation: the scale-free metric itself; log_ratio: squared error of the log of the "
                             "truth's block detail over the known squares' mean block detail (a calibrated amount)")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--inputs", type=input_groups, default=["own", "prior", "colour", "hole", "position"],
                        help="comma-separated input groups, from s8,s16,s32 (EfficientNet-Lite0 features of the fill),"
                             " own, prior, colour, hole, position (models.detail_map.INPUT_GROUPS)")
    parser.add_argument("--dropout", type=float, default=0.0, help="channel dropout on the head's inputs")
    parser.add_argument("--weight_decay", type=float, default=0.0, help="AdamW weight decay")
    parser.add_argument("--holdout", type=int, default=52,
                        help="training photos (the last ones) kept out of training to choose the epoch on")
    parser.add_argument("--train_photos", type=int, default=None,
                        help="train the head on the crops of only this many training photos (a random subset drawn "
                             "with --seed; the held-out photos stay the same): how placement grows with data")
    parser.add_argument("--cache", default=None, help="inputs cache (.pt): written if absent, read if present")
    parser.add_argument("--save", default=None, help="write the chosen epoch's head here (.pt, with its config)")
    args = parser.parse_args(argv)
    if args.train_photos is not None and args.train_photos < 1:
        parser.error(f"--train_photos must be at least 1, got {args.train_photos}")
    return args


def main(args):
    from utils.files import check_checkpoint_path
    check_checkpoint_path(args.checkpoint, "--checkpoint")
    import torch
    from tqdm import tqdm
    from data.datasets import ImageFolderDataset, masked_batches
    from data.images import list_images
    from losses import block_correlation_loss
    from models.detail_map import INPUT_GROUPS, DetailMapHead, detail_map_inputs, select_groups
    from models.effnet import load_effnet_lite0
    from utils.loading import generator_fill, load_generator, save_detail_head
    from utils.realism import block_detail

    # the photos --train_photos draws from, counted before the inputs take minutes to compute
    n_train = len(list_images(Path(args.train_dir))) - args.holdout
    if args.train_photos is not None and args.train_photos > n_train:
        raise SystemExit(f"error: --train_photos must be in 1..{n_train} (the training photos but the held-out)")
    torch.manual_seed(args.seed)
    generator, config = load_generator(args.checkpoint)
    fill = generator_fill(generator, "cpu", "no")
    effnet = None
    cache = Path(args.cache) if args.cache else None
    # what the inputs below hold: a cache every group (so it is built with the features), otherwise the groups
    # asked for and own and hole (the known squares' mean detail)
    every_group = cache is not None or bool({"s8", "s16", "s32"} & set(args.inputs))
    groups = tuple(INPUT_GROUPS) if every_group else tuple(dict.fromkeys([*args.inputs, "own", "hole"]))
    if every_group and not (cache is not None and cache.is_file()):
        effnet, reason = load_effnet_lite0()
        if effnet is None:
            raise SystemExit(reason)
        effnet.eval().requires_grad_(False)
    size, ratio = config["image_size"], config["crop_ratio"]

    def inputs_of(folder, train, passes, indices):
        dataset = ImageFolderDataset(folder, size, ratio, train=train)
        indices = list(indices(len(dataset.files)))
        xs, targets, insides = [], [], []
        for _ in range(passes):
            for truth, mask, masked in tqdm(masked_batches(dataset, indices, 16), total=-(-len(indices) // 16),
                                            desc=f"inputs {Path(folder).name}", leave=False):
                with torch.no_grad():
                    x = detail_map_inputs(masked, mask, fill(masked, mask), effnet, groups)
                target, inside = block_detail((truth + 1) / 2, mask)
                xs.append(x), targets.append(target), insides.append(inside)
        return [torch.cat(t) for t in (xs, targets, insides)]

    if cache is not None and cache.is_file():
        train, holdout, val = torch.load(cache, weights_only=True)
    else:
        train = inputs_of(args.train_dir, True, args.crops, lambda n: range(n - args.holdout))
        holdout = inputs_of(args.train_dir, False, 1, lambda n: range(n - args.holdout, n))
        val = inputs_of(args.val_dir, False, 1, range)
        if cache is not None:
            torch.save((train, holdout, val), cache)
    if args.train_photos is not None:
        if len(train[0]) % n_train:
            raise SystemExit(f"error: {len(train[0])} training crops are not whole passes over {n_train} photos: "
                             "--cache was built from another folder, or some photos could not be read")
        # row r of `train` is a crop of photo r % n_train: inputs_of makes --crops passes over the photos in order
        photos = torch.randperm(n_train, generator=torch.Generator().manual_seed(args.seed))[:args.train_photos]
        keep = torch.isin(torch.arange(len(train[0])) % n_train, photos)
        train = [t[keep] for t in train]
    for split in (train, holdout, val):
        # the known squares' mean block detail per image (B,): their blocks in the fill are the truth's own
        own, hole = (select_groups(split[0], [g], groups)[:, 0] for g in ("own", "hole"))
        own = own.exp()
        known = (hole == 0).float()
        split.append((own * known).sum(dim=(1, 2)) / known.sum(dim=(1, 2)).clamp_min(1.0))
        split[0] = select_groups(split[0], args.inputs, groups)

    def correlation(pred, target, inside):  # mean per-image Pearson, as the metric (images with varying truth)
        return 1.0 - float(block_correlation_loss(pred, target, inside))

    def loss_of(pred, target, inside, known):
        if args.objective == "correlation":
            return block_correlation_loss(pred, target, inside)
        log_ratio = (target.clamp_min(1e-4) / known.clamp_min(1e-4)[:, None, None]).log()
        inside = inside.float()
        return ((pred - log_ratio) ** 2 * inside).sum() / inside.sum().clamp_min(1.0)

    def as_map(pred):  # the head's output as a map of block detail (up to scale)
        return pred.exp() if args.objective == "log_ratio" else pred

    rows = []
    if "own" in args.inputs:
        offset = sum(INPUT_GROUPS[g] for g in args.inputs[:args.inputs.index("own")])
        rows.append(("the generator's own block detail (log)", correlation(val[0][:, offset], val[1], val[2])))
    torch.manual_seed(args.seed)  # the head's start and batches depend on --seed alone, cache or not
    head = DetailMapHead(train[0].shape[1], args.width, args.dropout)
    optimizer = torch.optim.AdamW(head.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, args.epochs)
    best = (-2.0, 0, None)
    for epoch in tqdm(range(args.epochs), desc="head"):
        head.train()
        order = torch.randperm(len(train[0]))
        for start in range(0, len(order), args.batch_size):
            batch = order[start:start + args.batch_size]
            loss = loss_of(head(train[0][batch]), *(split[batch] for split in train[1:]))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        scheduler.step()
        head.eval()
        with torch.no_grad():
            scores = [correlation(as_map(head(split[0])), split[1], split[2]) for split in (holdout, val)]
        tqdm.write(f"epoch {epoch + 1}: held-out train photos {scores[0]:.3f} val {scores[1]:.3f}")
        if scores[0] > best[0]:
            best = (scores[0], epoch + 1, scores[1])
            if args.save:
                save_detail_head(head, args.inputs, {"generator": Path(args.checkpoint).name, "image_size": size,
                                                     "crop_ratio": ratio, "objective": args.objective,
                                                     "epoch": epoch + 1, "held_out": round(scores[0], 4)}, args.save)
    rows.append((f"trained head, epoch {best[1]} (best on {args.holdout} held-out training photos: "
                 f"{best[0]:.3f})", best[2]))
    print(f"{len(train[0])} training crops of {args.train_photos or n_train} photos; objective {args.objective}; "
          f"inputs: {','.join(args.inputs)}; width {args.width}, dropout {args.dropout}, "
          f"weight decay {args.weight_decay}, lr {args.lr}")
    print("| map | correlation with the truth's block detail (val) |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value:.3f} |")


if __name__ == "__main__":
    from utils.cli import run
    sys.exit(run(main, parse_args))

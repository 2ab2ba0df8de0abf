"""Coherent patch synthesis from the known squares (Wexler et al. 2007; `models.patch_synthesis`), guided by a fill's
layout: is the classical exemplar-based completion, given the generator's layout, the photograph that the random-phase
texture (run 24) is not? (issue 17, docs/realistic_fills.md). Prints markdown rows (a benchmark, not a test).

    python benchmarks/probe_patch_synthesis.py --test_dir data/scenery_large/val
    python benchmarks/probe_patch_synthesis.py --test_dir data/scenery_large/val --guide harmonic --guide_weight 0

Each row is one --guide_weight (the layout's weight in the patch search; 0: the exemplar search alone, the guide only
starting the coarsest level), scored like `main.py --mode eval` (fp32) with the seconds per image of the guide and
the synthesis together. --guide generator (the default) takes the layout from --checkpoint's fill, harmonic from the
harmonic fill (then nothing is trained anywhere). --soft ends with the averaging vote instead of the per-pixel best
patch.
"""
import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from utils.cli import numbers  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--test_dir", required=True, help="folder of photos (a validation split)")
    parser.add_argument("--checkpoint", default=str(ROOT / "checkpoints/gan_scenery_128.pth"),
                        help="with --guide generator: the generator whose fill is the layout (training checkpoint "
                             "or export); its image size and crop ratio are used either way")
    parser.add_argument("--guide", default="generator", choices=("generator", "harmonic"),
                        help="whose low-pass the synthesis follows")
    parser.add_argument("--guide_weight", type=numbers, default=[3.0], help="the layout's weight; a comma list")
    parser.add_argument("--patch", type=int, default=7, help="patch side, px (odd)")
    parser.add_argument("--iterations", default="10,4,2", help="search-and-vote rounds per level, coarsest first")
    parser.add_argument("--occurrence", type=float, default=1.0, help="the cost of reusing a source (0: none)")
    parser.add_argument("--soft", action="store_true", help="end with the averaging vote (smoother)")
    parser.add_argument("--sheet", default=None, help="write a picture of the first row's fills here (.png)")
    parser.add_argument("--batch_size", type=int, default=15)
    return parser.parse_args(argv)


def main(args):
    from utils.errors import InputError
    from utils.files import check_checkpoint_path
    check_checkpoint_path(args.checkpoint, "--checkpoint")
    try:
        iterations = tuple(int(n) for n in args.iterations.split(","))
    except ValueError:
        raise InputError(f"--iterations must be comma-separated integers, got {args.iterations!r}") from None
    if min(iterations) < 1 or args.patch < 3 or args.patch % 2 == 0:
        raise InputError(f"--iterations needs counts >= 1 (got {args.iterations}) and --patch an odd side >= 3 "
                         f"(got {args.patch})")
    import torch
    import torch.nn.functional as F
    from models.baselines import BASELINES
    from utils.loading import generator_fill, load_generator
    from models.patch_synthesis import guided_patch_synthesis
    from utils.evaluation import SCORE_COLUMNS, evaluate_folder, markdown_head, markdown_scores

    from data.masks import gap_mask
    from models.patch_synthesis import check_levels
    generator, config = load_generator(args.checkpoint)
    try:
        check_levels(gap_mask(config["image_size"], config["crop_ratio"])[None], args.patch, len(iterations))
    except ValueError as error:
        raise InputError(f"--iterations {args.iterations} / --patch {args.patch}: {error}") from None
    guide = generator_fill(generator, "cpu", "no") if args.guide == "generator" else BASELINES["harmonic"]

    def synthesis(weight):
        @torch.no_grad()
        def fill(masked, mask):
            return guided_patch_synthesis(masked, mask, guide(masked, mask), patch=args.patch,
                                          levels=len(iterations), iterations=iterations, guide_weight=weight,
                                          occurrence=args.occurrence, hard_final=not args.soft)
        return fill

    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for weight in args.guide_weight:
            name = f"guide weight {weight:g}"
            summary = evaluate_folder(synthesis(weight), args.test_dir, config["image_size"], config["crop_ratio"],
                                      scratch, "cpu", batch_size=args.batch_size, save_images=False, desc=name)
            rows.append(f"| {name} | {markdown_scores(summary)} | {summary['seconds_per_image']:.2f} |")
    if args.sheet:  # the first row's fills of every len/8-th photo, beside the guide and shift-map
        from data.datasets import ImageFolderDataset, masked_batches
        from utils.images import save_grid
        dataset = ImageFolderDataset(args.test_dir, config["image_size"], config["crop_ratio"], train=False)
        picks = list(range(0, len(dataset), max(1, len(dataset) // 8)))[:8]
        truth, mask, masked = next(masked_batches(dataset, picks, len(picks)))
        columns = [masked, guide(masked, mask), synthesis(args.guide_weight[0])(masked, mask),
                   BASELINES["shiftmap"](masked, mask), truth]
        columns = [F.interpolate(c.float(), scale_factor=2, mode="nearest") for c in columns]
        print(f"sheet (input | guide | synthesis | shift-map | truth, 2x): {save_grid(columns, args.sheet)}")
    print(f"guide {args.guide} ({Path(args.checkpoint).name if args.guide == 'generator' else 'no training'}), "
          f"patch {args.patch}, iterations {args.iterations}, occurrence {args.occurrence:g}, "
          f"{'soft' if args.soft else 'hard'} final vote")
    print("\n" + markdown_head("patch synthesis", SCORE_COLUMNS, "s / image (guide + synthesis)"))
    print("\n".join(rows))


if __name__ == "__main__":
    from utils.cli import run
    sys.exit(run(main, parse_args))

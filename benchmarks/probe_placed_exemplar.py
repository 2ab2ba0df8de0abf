"""Fills whose copied detail is placed by a trained detail map (issue 17, docs/realistic_fills.md, runs 21 and 24). Prints
markdown rows (a benchmark, not a test).

    python benchmarks/probe_placed_exemplar.py --test_dir data/scenery_large/val

--head defaults to checkpoints/detail_map_head_128.pth (run 21's head, on the shipped generator); train another with
    python benchmarks/probe_detail_predictor.py --train_dir data/scenery_large/train \\
        --val_dir data/scenery_large/val --epochs 30 --width 32 --weight_decay 0.05 --lr 3e-4 --save HEAD.pth

The fill is `models.detail_map.PlacedExemplarTexture` on the generator's fill: its layout (the fill blurred by
G(--layout_sigma)) plus the known squares' fine, mid and coarse bands in normalised, colour-guided patches (or, with
--source spectral / local_spectral, their random-phase textures: run 24), made even in local detail and multiplied
by the head's gain, without their coarsest levels. Every combination of the comma lists --strength, --spread,
--coarse is a row (after a line with how well the head's map and the generator's
own detail correlate with where the truth has detail); scored like `main.py --mode eval` (fp32), with the seconds
per image of the generator and the texture together (evaluate_folder's fill time, batch --batch_size).
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
    parser.add_argument("--head", default=str(ROOT / "checkpoints/detail_map_head_128.pth"),
                        help="a detail map head (probe_detail_predictor.py --save) trained on this generator")
    parser.add_argument("--checkpoint", default=str(ROOT / "checkpoints/gan_scenery_128.pth"),
                        help="the generator whose fill is the base (training checkpoint or export)")
    parser.add_argument("--strength", type=numbers, default=[1.0], help="x the copied detail")
    parser.add_argument("--spread", type=numbers, default=[1.0], help="how far the gain follows the head's map")
    parser.add_argument("--coarse", type=numbers, default=[1.0], help="the coarse band's strength (fine = mid = 1)")
    parser.add_argument("--mid", type=float, default=1.0, help="the mid band's strength")
    parser.add_argument("--guide", type=float, default=0.3, help="colour-guide temperature (0: random patches)")
    parser.add_argument("--guide_cells", type=int, default=1,
                        help="> 1: patches chosen by a grid of this many x this many mean colours, not one")
    parser.add_argument("--stationary", type=float, default=0.0,
                        help="> 0: patches with one edge or object carrying their detail drawn less often")
    parser.add_argument("--isotropic", type=float, default=0.0,
                        help="> 0: patches of one orientation (straight edges, stripes) drawn less often")
    parser.add_argument("--source", default="patches", choices=("patches", "spectral", "local_spectral"),
                        help="the texture: the squares' 16-px patches, or random-phase textures of their bands "
                             "(local_spectral: of 24-px windows chosen by the layout's colour, --guide the "
                             "temperature)")
    parser.add_argument("--flatten_floor", type=float, default=0.0,
                        help="spectral: > 0 brings the squares' local detail to its mean first (raising by <= 1 / it)")
    parser.add_argument("--chroma", type=float, default=1.0, help="spectral: x the texture's colour deviation")
    parser.add_argument("--match_histogram", action="store_true",
                        help="spectral: each band's values matched to the squares' (sparsity and skew)")
    parser.add_argument("--shading", action="store_true",
                        help="the texture as grey shading that scales the layout's channels (its hue kept)")
    parser.add_argument("--layout_sigma", type=float, default=2.0, help="0: the generator's fill kept as it is")
    parser.add_argument("--even_floor", type=float, default=0.3, help="0: the copied detail not made even")
    parser.add_argument("--keep_levels", type=int, default=3, help="0: the copied detail's coarse levels kept")
    parser.add_argument("--exponential_gain", action="store_true", help="gain exp(spread x map), not linear")
    parser.add_argument("--oracle_layout", action="store_true",
                        help="an upper bound, not a fill: the truth's 1/4-size low-pass (the low-pass PSNR's scale) "
                             "in place of the generator's fill, to see what a better layout would give the texture")
    parser.add_argument("--sheet", default=None, help="write a picture of the first combination's fills here (.png)")
    parser.add_argument("--batch_size", type=int, default=15)
    return parser.parse_args(argv)


def oracle_layout(test_dir, image_size: int, crop_ratio: float):
    """A "fill" (masked, mask) -> the truth's low-pass (two pyrDowns and back up) with the known pixels kept: the
    layout that the low-pass hole PSNR rewards, looked up by the masked image (each photo's squares are its own)."""
    import torch
    from data.datasets import ImageFolderDataset, masked_batches
    from data.masks import keep_known
    from utils.realism import pyramid_lowpass
    dataset = ImageFolderDataset(test_dir, image_size, crop_ratio, train=False)
    layouts = {}
    for truth, _, masked in masked_batches(dataset, range(len(dataset.files)), 16):
        low = pyramid_lowpass(truth, 2)
        layouts.update({m.numpy().tobytes(): t for m, t in zip(masked, low)})

    def fill(masked, mask):
        return keep_known(masked, mask, torch.stack([layouts[m.cpu().numpy().tobytes()] for m in masked]))
    return fill


def main(args):
    from utils.files import check_checkpoint_path
    check_checkpoint_path(args.checkpoint, "--checkpoint")
    check_checkpoint_path(args.head, "--head")
    import itertools
    import torch
    import torch.nn.functional as F
    from models.detail_map import PlacedExemplarTexture
    from utils.loading import generator_fill, load_detail_head, load_generator
    from utils.evaluation import SCORE_COLUMNS, evaluate_folder, markdown_head, markdown_scores

    generator, config = load_generator(args.checkpoint)
    base = generator_fill(generator, "cpu", "no")
    if args.oracle_layout:
        base = oracle_layout(args.test_dir, config["image_size"], config["crop_ratio"])
    head_args, head_weights, head_config = load_detail_head(args.head)
    if head_config.get("image_size") != config["image_size"] or head_config.get("crop_ratio") != config["crop_ratio"]:
        raise SystemExit(f"--head {args.head} was trained at {head_config.get('image_size')} px, crop ratio "
                         f"{head_config.get('crop_ratio')}; --checkpoint fills at {config['image_size']} px, crop "
                         f"ratio {config['crop_ratio']}")

    def placed_layer(strength, spread, coarse):
        layer = PlacedExemplarTexture(head_args["width"], head_args["groups"], strength=strength, spread=spread,
                                      band_strengths=(1.0, args.mid, coarse), guide_temperature=args.guide,
                                      layout_sigma=args.layout_sigma, even_floor=args.even_floor,
                                      keep_levels=args.keep_levels, exponential_gain=args.exponential_gain,
                                      guide_cells=args.guide_cells, stationary=args.stationary,
                                      isotropic=args.isotropic, source=args.source,
                                      flatten_floor=args.flatten_floor, chroma=args.chroma,
                                      match_histogram=args.match_histogram, shading=args.shading)
        layer.head.load_state_dict(head_weights)
        return layer.eval()

    def placed(strength, spread, coarse):
        layer = placed_layer(strength, spread, coarse)

        @torch.no_grad()
        def fill(masked, mask):
            return layer(masked, mask, base(masked, mask))
        return fill

    combinations = list(itertools.product(args.strength, args.spread, args.coarse))
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for strength, spread, coarse in combinations:
            name = f"x{strength:g}, spread {spread:g}, coarse {coarse:g}"
            summary = evaluate_folder(placed(strength, spread, coarse), args.test_dir, config["image_size"],
                                      config["crop_ratio"], scratch, "cpu", batch_size=args.batch_size,
                                      save_images=False, desc=name)
            rows.append(f"| {name} | {markdown_scores(summary)} | {summary['seconds_per_image']:.3f} |")
    # Where the detail goes, before any texture: the head's map and the generator's own block detail against the
    # truth's (the fills' placement is what the texture makes of the map).
    from data.datasets import ImageFolderDataset, masked_batches
    from models.detail_map import detail_map_inputs
    from utils.realism import block_correlations, block_detail
    dataset = ImageFolderDataset(args.test_dir, config["image_size"], config["crop_ratio"], train=False)
    head_alone = placed_layer(*combinations[0]).head
    maps = {"head": [], "own": []}
    for truth, mask, masked in masked_batches(dataset, range(len(dataset.files)), args.batch_size):
        with torch.no_grad():
            filled = base(masked, mask)
            maps["head"] += block_correlations(head_alone(detail_map_inputs(masked, mask, filled, None,
                                                                            head_args["groups"])), truth, mask)
        maps["own"] += block_correlations(block_detail((filled + 1) / 2, mask)[0], truth, mask)
    means = {k: sum(v for v in vs if v == v) / max(1, sum(v == v for v in vs)) for k, vs in maps.items()}
    print(f"correlation with the truth's block detail: the head's map {means['head']:.3f}, "
          f"the generator's own detail {means['own']:.3f}")
    if args.sheet:  # the first combination's fills of every len/8-th photo, beside the base and shift-map
        from models.baselines import BASELINES
        from utils.images import save_grid
        picks = list(range(0, len(dataset), max(1, len(dataset) // 8)))[:8]
        truth, mask, masked = next(masked_batches(dataset, picks, len(picks)))
        columns = [masked, base(masked, mask), placed(*combinations[0])(masked, mask),
                   BASELINES["shiftmap"](masked, mask), truth]
        columns = [F.interpolate(c.float(), scale_factor=2, mode="nearest") for c in columns]
        print(f"sheet (input | base | placed | shift-map | truth, 2x): {save_grid(columns, args.sheet)}")
    if args.oracle_layout:
        print("ORACLE: the truth's low-pass as the layout (an upper bound, not a fill)")
    print(f"source {args.source} (flatten floor {args.flatten_floor:g}, chroma {args.chroma:g}, histograms "
          f"{'matched' if args.match_histogram else 'not matched'}, {'shading' if args.shading else 'additive'}), "
          f"layout sigma {args.layout_sigma:g}, mid {args.mid:g}, guide {args.guide:g} ({args.guide_cells}^2 cells, "
          f"stationary {args.stationary:g}, isotropic {args.isotropic:g}), even floor {args.even_floor:g}, "
          f"keep levels {args.keep_levels}, {'exponential' if args.exponential_gain else 'linear'} gain")
    print("\n" + markdown_head(f"fill on {Path(args.checkpoint).name}", SCORE_COLUMNS,
                               "s / image (generator + texture)"))
    print("\n".join(rows))


if __name__ == "__main__":
    from utils.cli import run
    sys.exit(run(main, parse_args))

"""Where does the truth have detail? Training-free predictors of detail placement, and fills that use one
(docs/realistic_fills.md, runs 16-17). Prints markdown rows (a benchmark, not a test).

    python benchmarks/probe_detail_placement.py --test_dir data/scenery_large/val

Part 1, maps: the Pearson correlation, over the 8x8 blocks inside the hole, of a map's block means with the
truth's block detail (mean |Laplacian|: the realism metrics' detail placement, utils/realism.py), averaged over
the images: the generator's own block detail (its placement), the known squares' detail carried into the hole
(`models.exemplar.known_detail_prior`, both bands summed), and the two combined (each standardised per image).

Part 2, fills: the generator's fill plus the known squares' fine and mid bands laid in normalised cross-faded
patches (`models.exemplar.ExemplarTexture(normalise=True)`, the eval draw), at --strength times either the
sources' average detail ("even") or the prior's amount ("prior"), scored like `main.py --mode eval` (fp32).
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
                        help="the generator whose fill is the base (training checkpoint or export)")
    parser.add_argument("--strength", type=numbers, default=[1.0], help="part 2: strengths of the copied detail")
    parser.add_argument("--batch_size", type=int, default=15)
    return parser.parse_args(argv)


def standardised(x):
    """(B, ...) -> per image zero mean, unit std."""
    flat = x.flatten(1)
    return ((flat - flat.mean(1, keepdim=True)) / flat.std(1, keepdim=True).clamp_min(1e-8)).view_as(x)


def copied_detail(masked, mask, layer, amount: str):
    """(B, 3, S, S): the two sources' normalised band canvases, each at its source's RMS ("even") or rescaled
    to the prior's local amount ("prior"), summed with 1/sqrt(2) per source (two independent textures)."""
    import torch
    from models.exemplar import SIGMAS, SOURCES, band_rms, bands, known_detail_prior, source_regions
    canvas = layer.canvas(masked, mask).unflatten(1, (SOURCES, len(SIGMAS), 3))  # (B, sources, bands, 3, S, S)
    if amount == "prior":
        regions = source_regions(mask)
        prior = known_detail_prior(masked, mask)  # (B, bands, S, S)
        rms = torch.stack([band_rms(bands(masked, regions[:, k:k + 1]), regions[:, k:k + 1])
                           for k in range(SOURCES)], dim=1)  # (B, sources, bands)
        canvas = canvas * (prior[:, None] / rms[..., None, None].clamp_min(1e-6))[:, :, :, None]
    return canvas.sum(dim=(1, 2)) / SOURCES ** 0.5


def main(args):
    from utils.files import check_checkpoint_path
    check_checkpoint_path(args.checkpoint, "--checkpoint")
    import torch
    from data.masks import keep_known
    from models.exemplar import ExemplarTexture, known_detail_prior
    from utils.loading import generator_fill, load_generator
    from utils.evaluation import SCORE_COLUMNS, evaluate_folder, markdown_head, markdown_scores
    from utils.realism import block_correlations, block_detail

    generator, config = load_generator(args.checkpoint)
    base = generator_fill(generator, "cpu", "no")
    maps = {"the generator's own block detail": [], "known detail carried into the hole (prior)": [],
            "both, standardised and added": []}

    def record_maps(masked, mask, filled, truth):
        own = block_detail((filled + 1) / 2, mask)[0]
        prior = torch.nn.functional.avg_pool2d(known_detail_prior(masked, mask).sum(1, keepdim=True), 8)[:, 0]
        for name, blocks in zip(maps, (own, prior, standardised(own) + standardised(prior))):
            maps[name] += block_correlations(blocks, truth, mask)

    layer = ExemplarTexture(1, normalise=True).eval()
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for amount in ("even", "prior"):
            for strength in args.strength:
                def fill(masked, mask, amount=amount, strength=strength):
                    filled = base(masked, mask)
                    detail = copied_detail(masked.float(), mask.float(), layer, amount)
                    return keep_known(masked, mask, (filled + strength * detail).clamp(-1, 1))
                summary = evaluate_folder(fill, args.test_dir, config["image_size"], config["crop_ratio"], scratch,
                                          "cpu", batch_size=args.batch_size, save_images=False,
                                          desc=f"{amount} x{strength:g}")
                rows.append(f"| + copied detail, {amount} amount, x{strength:g} | {markdown_scores(summary)} |")

    # Part 1 on the same images and masks (the eval dataset's), filled by the base generator alone.
    from data.datasets import ImageFolderDataset, masked_batches
    dataset = ImageFolderDataset(args.test_dir, config["image_size"], config["crop_ratio"], train=False)
    # (its __getitem__ wraps around: indices, not list(dataset))
    for truth, mask, masked in masked_batches(dataset, range(len(dataset)), args.batch_size):
        record_maps(masked, mask, base(masked, mask), truth)
    print("| map | correlation with the truth's block detail |\n|---|---|")
    for name, scores in maps.items():
        valid = [s for s in scores if s == s]
        print(f"| {name} | {sum(valid) / max(len(valid), 1):.3f} |")
    print("\n" + markdown_head(f"fill on {Path(args.checkpoint).name}", SCORE_COLUMNS))
    print("\n".join(rows))


if __name__ == "__main__":
    from utils.cli import run
    sys.exit(run(main, parse_args))

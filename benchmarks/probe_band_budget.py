"""What a fill's layout error is made of, band by band: how much detail a fill draws at each scale, how much of it
the truth's context predicts, and what it costs the low-pass hole PSNR (docs/realistic_fills.md, "The layout's
budget"). Prints markdown tables (a benchmark, not a test).

    python benchmarks/probe_band_budget.py --test_dir data/scenery_large/val \\
        --checkpoint "shipped GAN=checkpoints/gan_scenery_128.pth" --checkpoint "run 44=runs/run44/pick.pth" --hand_made

The bands are the realism metrics' Laplacian pyramid (utils/realism.py: 128, 64, 32 px and the 16-px low-pass),
over the hole at each level, pooled over all images. Per fill and band: the amplitude ratio (the fill's RMS over
the truth's) and the correlation of the fill's band with the truth's (how much of the band the fill predicts: a
band drawn at the truth's amplitude but uncorrelated with it adds its whole energy to the squared error). Then the
low-pass hole PSNR (the ¼-size layout metric, per image and averaged, as eval reports it) of the fill as it is and
with its 64-px band, its 32-px band or both removed (`models.filters.collapse_laplacian`): what the layout pays
for the detail drawn at each scale. `--hand_made` adds the fill that the realistic-fills issue gives as proof that
its targets are compatible: the first checkpoint's 16-px level with shift-map's three finer bands.
"""
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from utils.cli import Parser, labelled_checkpoints, run  # noqa: E402
from utils.errors import InputError  # noqa: E402

REMOVED_BANDS = (64, 32)  # px: the mid-scale bands whose detail the layout metric (1/4 size) sees


def parse_args(argv=None):
    parser = Parser(description=__doc__)
    parser.add_argument("--test_dir", required=True, help="folder of photos (a validation split)")
    parser.add_argument("--checkpoint", action="append", default=[],
                        help="[LABEL=]PATH of a main.py checkpoint or export; repeat for several rows")
    parser.add_argument("--floors", default="harmonic,shiftmap", help="training-free fills to add ('' for none)")
    parser.add_argument("--hand_made", action="store_true",
                        help="add the first checkpoint's 16-px level with shift-map's finer bands")
    parser.add_argument("--image_size", type=int, default=128, help="used only without --checkpoint")
    parser.add_argument("--crop_ratio", type=float, default=0.4, help="used only without --checkpoint")
    parser.add_argument("--batch_size", type=int, default=16)
    return parser.parse_args(argv)


def band_sizes(image_size: int) -> list:
    """The pyramid's level sizes in px, finest first, down to the 16-px low-pass (128: [128, 64, 32, 16]): read
    off `laplacian_pyramid` itself, so that the probe's bands are the metrics' bands."""
    import torch
    from models.filters import laplacian_pyramid
    return [level.shape[-1] for level in laplacian_pyramid(torch.zeros(1, 1, image_size, image_size))]


def band_sums(outputs: list, truths: list, mask):
    """(levels, 3) float64 from the Laplacian pyramids (`laplacian_pyramid`) of a fill and of the truth: per level
    (finest first; the last is the low-pass, taken as its deviation from the truth's mean colour in the hole), the
    sums over the level's hole of output², truth², output·truth."""
    import torch
    from models.filters import level_masks
    holes = level_masks(mask, len(truths))
    sums = []
    for level, (band, true, hole) in enumerate(zip(outputs, truths, holes)):
        if level == len(truths) - 1:
            mean = (true * hole).sum((2, 3), keepdim=True) / hole.sum((2, 3), keepdim=True).clamp_min(1)
            band, true = band - mean, true - mean
        sums.append(torch.stack([(band * band * hole).sum(), (true * true * hole).sum(), (band * true * hole).sum()]))
    return torch.stack(sums).double()


def amplitude_and_correlation(sums) -> list:
    """[(the output's RMS / the truth's, their correlation)] per level of `band_sums`' (summed) result."""
    return [((f / t) ** 0.5 if t > 0 else float("nan"), c / max((f * t) ** 0.5, 1e-12)) for f, t, c in sums.tolist()]


def without_bands(levels: list, bands):
    """(B, 3, S, S): the image of the pyramid `levels` with the bands of the given indices (0: the finest) zeroed."""
    import torch
    from models.filters import collapse_laplacian
    return collapse_laplacian([torch.zeros_like(band) if i in bands else band for i, band in enumerate(levels)])


def main(args):
    checkpoints = labelled_checkpoints(args.checkpoint)
    if args.hand_made and not checkpoints:
        raise InputError("--hand_made needs a --checkpoint (its 16-px level is the layout)")
    from tqdm import tqdm
    from data.datasets import ImageFolderDataset, masked_batches
    from data.masks import keep_known
    from models.baselines import BASELINES
    from models.filters import laplacian_pyramid
    from utils.loading import generator_fill, load_generator
    from utils.evaluation import quantize
    from utils.realism import lowpass_hole_psnr, pyramid_lowpass

    size, crop_ratio = args.image_size, args.crop_ratio
    fills = {}
    for label, path, use_ema in checkpoints:
        generator, config = load_generator(path, use_ema)
        if len(fills) == 0:
            size, crop_ratio = config["image_size"], config["crop_ratio"]
        fills[label] = generator_fill(generator, "cpu", "no")
    for name in filter(None, (n.strip() for n in args.floors.split(","))):
        if name not in BASELINES:
            raise InputError(f"--floors: unknown fill {name!r} (choose from {', '.join(BASELINES)})")
        fills[f"{name} fill"] = BASELINES[name]
    sizes = band_sizes(size)
    if args.hand_made:  # the first checkpoint's low-pass level (steps pyrDowns: 3 at 128²), shift-map's bands
        layout, shiftmap, steps = fills[checkpoints[0][0]], BASELINES["shiftmap"], len(sizes) - 1

        def hand_made(masked, mask):
            texture = shiftmap(masked, mask).float()
            return keep_known(masked, mask, pyramid_lowpass(layout(masked, mask), steps)
                              + texture - pyramid_lowpass(texture, steps))
        fills[f"hand-made: {checkpoints[0][0]}'s {sizes[-1]}-px level + shift-map's bands"] = hand_made
    removals = [("as it is", ())] + [(f"without {px} px", (sizes.index(px),)) for px in REMOVED_BANDS
                                     if px in sizes[:-1]]
    if len(removals) == 3:
        removals.append(("without both", removals[1][1] + removals[2][1]))
    dataset = ImageFolderDataset(args.test_dir, size, crop_ratio, train=False)
    sums = {name: 0 for name in fills}  # per fill: band_sums over all images
    lowpass = {name: {label: [] for label, _ in removals} for name in fills}  # per fill and removal: per-image dB
    batches = masked_batches(dataset, range(len(dataset)), args.batch_size)
    for truth, mask, masked in tqdm(batches, total=-(-len(dataset) // args.batch_size), desc="fills", unit="batch"):
        truth_levels = laplacian_pyramid(truth)  # once per batch, for every fill
        for name, fill in fills.items():
            output = quantize(fill(masked, mask).float())
            output_levels = laplacian_pyramid(output)  # once per fill, for its sums and every removal
            sums[name] = sums[name] + band_sums(output_levels, truth_levels, mask)
            for label, bands in removals:
                kept = keep_known(masked, mask, without_bands(output_levels, bands)) if bands else output
                lowpass[name][label] += lowpass_hole_psnr(kept, truth, mask)

    print(f"{len(dataset)} images of `{args.test_dir}`, {size}², crop ratio {crop_ratio}.\n")
    names = [f"{px} px" for px in sizes[:-1]] + [f"{sizes[-1]} px (low-pass)"]
    print("| fill | " + " | ".join(f"{name}: amplitude / correlation" for name in names) + " |")
    print("|---|" + "---|" * len(names))
    for name, total in sums.items():
        cells = [f"{a:.2f} / {c:.2f}" for a, c in amplitude_and_correlation(total)]
        print(f"| {name} | " + " | ".join(cells) + " |")
    print("\n| fill (low-pass hole PSNR, dB) | " + " | ".join(label for label, _ in removals) + " |")
    print("|---|" + "---|" * len(removals))
    for name, scores in lowpass.items():
        print(f"| {name} | " + " | ".join(f"{sum(v) / len(v):.2f}" for v in scores.values()) + " |")


if __name__ == "__main__":
    sys.exit(run(main, parse_args))

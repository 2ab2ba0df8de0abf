"""Score GAN checkpoints and training-free floors on one folder, side by side, as a markdown table.

    python benchmarks/score.py --test_dir data/scenery_large/val --floors harmonic,telea,mean \\
        --checkpoint runs/A/ck/checkpoint_epoch_40.pth --checkpoint raw:runs/A/ck/checkpoint_epoch_40.pth
    python benchmarks/score.py --test_dir data/scenery_large/test --checkpoint checkpoints/gan_scenery_128.pth
    python benchmarks/score.py --test_dir data/scenery_large/val --floors "" --checkpoint runs/A/pick.pth \\
        --detail_smoothing 0,1,1:2

Every method goes through utils.evaluation.evaluate_folder (the code behind `main.py --mode eval`),
at the first checkpoint's image size and crop ratio (or --image_size / --crop_ratio without one).
`--checkpoint raw:PATH` scores a training checkpoint's raw generator weights instead of its EMA
copy; `--checkpoint LABEL=PATH` names the row; `--texture_scales` and `--detail_smoothing` add a row per
strength (the inference settings an export bakes in). Writes <out_dir>/<row>/metrics.csv and
<out_dir>/score.md and prints the table: hole PSNR and L1 (SSIM in each metrics.csv), sharpness and checkerboard ratios
(output / truth in the hole), the realism metrics of utils/realism.py (low-pass hole PSNR, detail
placement, patch SWD per Laplacian level with its truth-against-truth floor), KID and the perceptual
distance on EfficientNet-Lite0 features, and seconds per image on this machine.
"""
import copy
import platform
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models.options import BASELINE_NAMES  # noqa: E402
from utils.cli import Parser, checkpoint_spec, floor_names, labelled_checkpoints, parse_or_exit, run  # noqa: E402
from utils.errors import InputError  # noqa: E402

COLUMNS = (("psnr_hole", "hole PSNR (dB) ↑", "{:.2f}"), ("l1_hole", "hole L1 ↓", "{:.4f}"),
           ("psnr_lowpass", "low-pass hole PSNR ↑", "{:.2f}"),
           ("sharpness", "sharpness (→1)", "{:.2f}"), ("placement", "detail placement ↑", "{:.2f}"),
           ("swd", "patch SWD ↓ (levels)", None), ("checkerboard", "checkerboard (≤1.3)", "{:.2f}"),
           ("stripes", "stripe share", "{:.2f}"), ("chroma", "chroma share", "{:.2f}"),
           ("kid_effnet", "KID (EffNet) ↓", "{:.4f}"), ("effnet_distance", "EffNet dist. ↓", "{:.4f}"),
           ("seconds_per_image", "s / image", "{:.3f}"))


def parse_args(argv=None):
    parser = Parser(description=__doc__)
    parser.add_argument("--test_dir", required=True, help="folder of photos to fill and score")
    parser.add_argument("--checkpoint", action="append", default=[],
                        help="[raw:][LABEL=]PATH of a main.py checkpoint or export; repeat for several rows")
    parser.add_argument("--floors", default="harmonic,telea,fsr,shiftmap,mean",
                        help=f"training-free fills to add, of {','.join(BASELINE_NAMES)} ('' for none; fsr and "
                             "shiftmap are the slow ones)")
    parser.add_argument("--image_size", type=int, default=128, help="used only without --checkpoint")
    parser.add_argument("--crop_ratio", type=float, default=0.4, help="used only without --checkpoint")
    parser.add_argument("--texture_scales", default="1",
                        help="comma-separated strengths of the texture head to score each checkpoint at "
                             "(utils.loading.scale_texture; pick one on a validation split for --export)")
    parser.add_argument("--detail_smoothing", default=None,
                        help="comma-separated SIGMA[:BANDS] settings of the detail smoothing to score each checkpoint "
                             "at (0: off; models.filters.smooth_detail_amplitude; pick one on a validation split for "
                             "main.py --export ... --detail_smoothing SIGMA --detail_smoothing_bands BANDS); default: "
                             "each checkpoint as it is")
    parser.add_argument("--out_dir", default="results/score",
                        help="where score.md and a folder per row (its metrics.csv) are written")
    parser.add_argument("--batch_size", type=int, default=16, help="images per forward pass")
    return parser.parse_args(argv)


def check_args(args) -> None:
    """Refuse a missing --test_dir or checkpoint and unknown floors before the heavy imports."""
    if not Path(args.test_dir).is_dir():
        raise InputError(f"--test_dir {args.test_dir}: no such folder (data/scenery_large is built by "
                         "python tools/build_scenery_set.py)")
    floor_names(args.floors, "--floors")
    labelled_checkpoints(args.checkpoint, "--checkpoint")


if __name__ == "__main__":
    # Bad flags and folders are refused here, before torch is imported (seconds): one line, exit status 2.
    CLI_ARGS = parse_or_exit(parse_args, check_args)

import torch  # noqa: E402

import main as gan  # noqa: E402
from models.baselines import BASELINES  # noqa: E402
from utils.evaluation import eval_device, evaluate_folder, format_swd  # noqa: E402
from utils.loading import scale_texture, with_detail_smoothing  # noqa: E402


def detail_smoothings(spec) -> list:
    """--detail_smoothing "0,1,1.5:2" -> [(0.0, 1), (1.0, 1), (1.5, 2)]; None -> [None] (the checkpoints as they are)."""
    if spec is None:
        return [None]
    settings = []
    for item in filter(None, (v.strip() for v in spec.split(","))):
        sigma, _, bands = item.partition(":")
        try:
            setting = (float(sigma), int(bands or 1))
        except ValueError:
            setting = None
        if setting is None or setting[0] < 0 or setting[1] < 1:
            raise InputError(f"--detail_smoothing takes comma-separated SIGMA[:BANDS] (sigma >= 0, bands >= 1), "
                             f"got {item!r}")
        settings.append(setting)
    if not settings:
        raise InputError("--detail_smoothing is empty: give SIGMA[:BANDS] values, e.g. 0,1,1:2")
    return settings


def main(args):
    device = eval_device()
    rows = []  # (label, fill)
    size, crop_ratio = args.image_size, args.crop_ratio
    try:
        scales = [float(v) for v in args.texture_scales.split(",")]
    except ValueError:
        raise InputError(f"--texture_scales must be comma-separated numbers, got {args.texture_scales!r}") from None
    smoothings = detail_smoothings(args.detail_smoothing)
    for spec in args.checkpoint:
        label, path, use_ema = checkpoint_spec(spec, default_prefix="GAN ")
        generator, config = gan.load_generator(path, use_ema=use_ema)
        if not rows:
            size, crop_ratio = config["image_size"], config["crop_ratio"]
        for scale in scales:
            scaled = generator if scale == 1 else scale_texture(copy.deepcopy(generator), scale)  # a copy per strength
            name = label + ("" if scale == 1 else f", texture x{scale:g}")
            for smoothing in smoothings:
                if smoothing is None:
                    rows.append((name, gan.make_fill(scaled, device, "no")))
                    continue
                sigma, bands = smoothing
                suffix = f", smoothing {sigma:g}" + (f" ({bands} bands)" if sigma and bands != 1 else "")
                rows.append((name + suffix, gan.make_fill(with_detail_smoothing(scaled, sigma, bands), device, "no")))
    for name in filter(None, (n.strip() for n in args.floors.split(","))):
        rows.append((f"{name} fill", BASELINES[name]))

    results = []
    for label, fill in rows:
        folder = Path(args.out_dir) / re.sub(r"[^A-Za-z0-9_.-]+", "_", label)
        summary = evaluate_folder(fill, args.test_dir, size, crop_ratio, folder, device, batch_size=args.batch_size,
                                  save_images=False, desc=label)
        results.append((label, summary))
    header = "| method | " + " | ".join(title for _, title, _ in COLUMNS) + " |"
    lines = [header, "|" + "---|" * (len(COLUMNS) + 1)]
    for label, summary in results:
        cells = [format_swd(summary) if key == "swd" else fmt.format(summary[key]) if summary[key] is not None
                 else "n/a" for key, _, fmt in COLUMNS]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    if results:  # the same truths and positions for every row: one floor
        first = results[0][1]
        floor = format_swd({"swd": first["swd_floor"], "swd_levels": first["swd_floor_levels"]})
        truths = {"swd": floor, "stripes": f"{first['stripes_truth']:.2f}", "chroma": f"{first['chroma_truth']:.2f}"}
        cells = [truths.get(key, "") for key, _, _ in COLUMNS]
        lines.append("| the truth (against itself: the patch SWD floor) | " + " | ".join(cells) + " |")
    n = results[0][1]["num_images"] if results else 0
    note = (f"\n{n} images of `{args.test_dir}`, {size}², crop ratio {crop_ratio}; "
            f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads.\n")
    table = "\n".join(lines) + note
    Path(args.out_dir).mkdir(parents=True, exist_ok=True)
    (Path(args.out_dir) / "score.md").write_text(table)
    print(table)
    print(f"wrote {Path(args.out_dir) / 'score.md'} and a metrics.csv per row under {args.out_dir}/")


if __name__ == "__main__":
    sys.exit(run(main, parse_args, args=CLI_ARGS))

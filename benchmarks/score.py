"""Score GAN checkpoints and training-free floors on one folder, side by side, as a markdown table.

    python benchmarks/score.py --test_dir data/scenery_large/val --floors harmonic,telea,mean \
        --checkpoint runs/A/ck/checkpoint_epoch_40.pth --checkpoint raw:runs/A/ck/checkpoint_epoch_40.pth
    python benchmarks/score.py --test_dir data/scenery_large/test --checkpoint checkpoints/gan_scenery_128.pth

Every method goes through utils.evaluation.evaluate_folder (the code behind `main.py --mode eval`),
at the first checkpoint's image size and crop ratio (or --image_size / --crop_ratio without one).
`--checkpoint raw:PATH` scores a training checkpoint's raw generator weights instead of its EMA
copy; `--checkpoint LABEL=PATH` names the row. Writes <out_dir>/<row>/metrics.csv and
<out_dir>/score.md and prints the table: hole PSNR / SSIM / L1, sharpness and checkerboard ratios
(output / truth in the hole), the realism metrics of utils/realism.py (low-pass hole PSNR, detail
placement, patch SWD per Laplacian level with its truth-against-truth floor), KID and the perceptual
distance on EfficientNet-Lite0 features, and seconds per image on this machine.
"""
import copy
import platform
import re
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import main as gan  # noqa: E402
from models.baselines import BASELINES  # noqa: E402
from models.loading import scale_texture  # noqa: E402
from utils.errors import InputError  # noqa: E402
from utils.cli import Parser, labelled_path, run  # noqa: E402
from utils.evaluation import eval_device, evaluate_folder, format_swd  # noqa: E402

COLUMNS = (("psnr_hole", "hole PSNR (dB) ↑", "{:.2f}"), ("psnr_lowpass", "low-pass hole PSNR ↑", "{:.2f}"),
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
                        help="training-free fills to add ('' for none)")
    parser.add_argument("--image_size", type=int, default=128, help="used only without --checkpoint")
    parser.add_argument("--crop_ratio", type=float, default=0.4, help="used only without --checkpoint")
    parser.add_argument("--texture_scales", default="1",
                        help="comma-separated strengths of the texture head to score each checkpoint at "
                             "(models.loading.scale_texture; pick one on a validation split for --export)")
    parser.add_argument("--out_dir", default="results/score")
    parser.add_argument("--batch_size", type=int, default=16)
    return parser.parse_args(argv)


def main(args):
    device = eval_device()
    rows = []  # (label, fill)
    size, crop_ratio = args.image_size, args.crop_ratio
    try:
        scales = [float(v) for v in args.texture_scales.split(",")]
    except ValueError:
        raise InputError(f"--texture_scales must be comma-separated numbers, got {args.texture_scales!r}") from None
    for spec in args.checkpoint:
        use_ema = not spec.startswith("raw:")
        spec = spec.removeprefix("raw:")
        label, path = labelled_path(spec)
        generator, config = gan.load_generator(path, use_ema=use_ema)
        if not rows:
            size, crop_ratio = config["image_size"], config["crop_ratio"]
        label = label or f"GAN {Path(path).stem}" + ("" if use_ema else " (raw weights)")
        for scale in scales:
            if scale == 1:
                rows.append((label, gan.make_fill(generator, device, "no")))
            else:  # a scaled copy per strength
                scaled = scale_texture(copy.deepcopy(generator), scale)
                rows.append((f"{label}, texture x{scale:g}", gan.make_fill(scaled, device, "no")))
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


if __name__ == "__main__":
    sys.exit(run(main, parse_args))

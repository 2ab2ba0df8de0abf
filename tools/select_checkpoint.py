"""Pick a run's checkpoint by the realistic-fills selection rule, on its validation scores, and optionally export it.

    python tools/select_checkpoint.py --val_metrics runs/realistic_128/train/val_metrics.csv --min_lowpass 16.81
    python tools/select_checkpoint.py --val_metrics runs/device/train/val_metrics.csv \
        --harmonic_dir .device/val --export runs/device/pick.pth

The rule (docs/model_card.md, fixed before any test score): the lowest val patch SWD among the checkpoints whose
val low-pass hole PSNR is at least the harmonic fill's + 0.5 dB on the same photos. The line is --min_lowpass, or
the harmonic fill's low-pass PSNR on --harmonic_dir (scored here at the run's image size and crop ratio, by the
code behind `main.py --mode eval`) + --margin. The rows are
`main.py --mode train --val_dir`'s <results_dir>/train/val_metrics.csv; their checkpoints are
<checkpoint_dir>/checkpoint_epoch_N.pth. Prints the pick; --export writes its (EMA) generator as an fp16 export.
"""
import argparse
import csv
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from utils.errors import InputError  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--val_metrics", required=True, help="a run's <results_dir>/train/val_metrics.csv")
    line = parser.add_mutually_exclusive_group(required=True)
    line.add_argument("--min_lowpass", type=float, help="the low-pass hole PSNR line, dB")
    line.add_argument("--harmonic_dir", help="the val photos the rows were scored on: the line is the harmonic "
                                            "fill's low-pass hole PSNR there + --margin")
    parser.add_argument("--margin", type=float, default=0.5, help="with --harmonic_dir: dB above the harmonic fill")
    parser.add_argument("--checkpoint_dir", default=None,
                        help="where the run's checkpoints are (default: the folder above <results_dir>/train)")
    parser.add_argument("--export", default=None, help="write the pick's generator here (fp16 weights + config)")
    return parser.parse_args(argv)


def harmonic_lowpass(folder, image_size: int, crop_ratio: float, results_dir) -> float:
    """The harmonic fill's mean low-pass hole PSNR on `folder` (utils.evaluation.evaluate_folder, on the CPU)."""
    import torch
    from models.baselines import BASELINES
    from utils.evaluation import evaluate_folder
    summary = evaluate_folder(BASELINES["harmonic"], folder, image_size, crop_ratio, results_dir,
                              torch.device("cpu"), save_images=False, desc="harmonic fill")
    return summary["psnr_lowpass"]


def pick_row(rows: list, line: float) -> dict:
    """The row with the lowest `swd` among those with `psnr_lowpass` >= line; InputError when none qualifies."""
    kept = [row for row in rows if float(row["psnr_lowpass"]) >= line]
    if not kept:
        best = max(float(row["psnr_lowpass"]) for row in rows)
        raise InputError(f"no checkpoint keeps the layout: the best val low-pass hole PSNR is {best:.2f} dB, under "
                         f"the line {line:.2f} dB")
    return min(kept, key=lambda row: float(row["swd"]))


def main(args):
    path = Path(args.val_metrics)
    if not path.is_file():
        raise InputError(f"--val_metrics {path} not found (train with --val_dir to write it)")
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows or not {"epoch", "swd", "psnr_lowpass"} <= set(rows[0]):
        raise InputError(f"--val_metrics {path}: no rows with epoch, swd and psnr_lowpass")
    checkpoint_dir = Path(args.checkpoint_dir) if args.checkpoint_dir else path.parent.parent
    checkpoints = {int(row["epoch"]): checkpoint_dir / f"checkpoint_epoch_{int(row['epoch'])}.pth" for row in rows}
    if args.harmonic_dir:
        if not Path(args.harmonic_dir).is_dir():
            raise InputError(f"--harmonic_dir {args.harmonic_dir} is not a folder")
        from utils.checkpoint import checkpoint_config
        from utils.files import check_checkpoint_path
        config = checkpoint_config(check_checkpoint_path(checkpoints[int(rows[0]["epoch"])], "--checkpoint_dir"),
                                   kinds=("gan",))
        line = harmonic_lowpass(args.harmonic_dir, config["image_size"], config["crop_ratio"],
                                path.parent / "harmonic") + args.margin
    else:
        line = args.min_lowpass
    row = pick_row(rows, line)
    checkpoint = checkpoints[int(row["epoch"])]
    print(f"pick: epoch {row['epoch']} (step {row['step']}) of {len(rows)} scored: patch SWD {float(row['swd']):.1f} "
          f"({row['swd_levels']}), low-pass {float(row['psnr_lowpass']):.2f} dB (line {line:.2f}), hole PSNR "
          f"{float(row['psnr_hole']):.2f}, placement {float(row['placement']):.2f}, sharpness "
          f"{float(row['sharpness']):.2f}: {checkpoint}")
    if args.export:
        from utils.files import check_checkpoint_path
        check_checkpoint_path(str(checkpoint), "--checkpoint_dir")
        from models.loading import export_generator, load_generator
        generator, config = load_generator(checkpoint)
        print(f"exported {export_generator(generator, config, args.export)}")


if __name__ == "__main__":
    from utils.cli import run
    sys.exit(run(main, parse_args))

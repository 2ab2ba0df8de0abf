"""Pick a run's checkpoint by the realistic-fills selection rule, on its validation scores, and optionally export it.

    python tools/select_checkpoint.py --val_metrics runs/realistic_128/train/val_metrics.csv --min_lowpass 16.81
    python tools/select_checkpoint.py --val_metrics runs/device/train/val_metrics.csv \\
        --harmonic_dir .device/val --harmonic_cache .device/val_harmonic.json --export runs/device/pick.pth

The rule (docs/realistic_fills.md, fixed before any test score): the lowest val patch SWD among the checkpoints whose
val low-pass hole PSNR is at least the harmonic fill's + 0.5 dB on the same photos, and whose chroma and stripe
shares are at most the truth's + --chroma_margin / --stripe_margin (patch SWD alone rewards colour sparkle and
plaid); a test score also asks for margins on val (the val-to-test drops seen so far: --margin above 0.5 and
--min_placement, the model card's current values). The line is --min_lowpass, or the harmonic fill's low-pass PSNR
on --harmonic_dir (scored here at the run's image size and crop ratio, by the code behind `main.py --mode eval`) +
--margin; the truth's shares are measured on --harmonic_dir too (--max_chroma / --max_stripes set the bounds
directly, with either). The rows are `main.py --mode train --val_dir`'s <results_dir>/train/val_metrics.csv; their
checkpoints are <checkpoint_dir>/checkpoint_epoch_N.pth. Prints the pick; --export writes its (EMA) generator as an
fp16 export.
"""
import argparse
import csv
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from utils.errors import InputError  # noqa: E402


# The columns of val_metrics.csv the pick reads and prints (every run since the realism metrics has them).
VAL_COLUMNS = ("epoch", "step", "swd", "swd_levels", "psnr_lowpass", "psnr_hole", "placement", "sharpness")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--val_metrics", required=True, help="a run's <results_dir>/train/val_metrics.csv")
    line = parser.add_mutually_exclusive_group(required=True)
    line.add_argument("--min_lowpass", type=float, help="the low-pass hole PSNR line, dB")
    line.add_argument("--harmonic_dir", help="the val photos the rows were scored on: the line is the harmonic "
                                            "fill's low-pass hole PSNR there + --margin")
    parser.add_argument("--harmonic_cache", default=None,
                        help="with --harmonic_dir: a JSON file of the harmonic fill's scores by folder, image size and "
                             "crop ratio, read when it holds this run's, else written (tools/pack_device_run.py "
                             "fills .device/val_harmonic.json, so that the lent GPU machine does not score it)")
    parser.add_argument("--margin", type=float, default=0.5, help="with --harmonic_dir: dB above the harmonic fill")
    parser.add_argument("--chroma_margin", type=float, default=0.03,
                        help="with --harmonic_dir: the most chroma share above the truth's there (inf: no bound)")
    parser.add_argument("--stripe_margin", type=float, default=0.10,
                        help="with --harmonic_dir: the most stripe share above the truth's there (inf: no bound)")
    parser.add_argument("--max_chroma", type=float, default=None, help="the chroma share bound itself")
    parser.add_argument("--max_stripes", type=float, default=None, help="the stripe share bound itself")
    parser.add_argument("--min_placement", type=float, default=None,
                        help="the least val detail placement (no bound by default; the model card's rule for a "
                             "test score sets one)")
    parser.add_argument("--checkpoint_dir", default=None,
                        help="where the run's checkpoints are (default: the folder above <results_dir>/train)")
    parser.add_argument("--export", default=None, help="write the pick's generator here (fp16 weights + config)")
    return parser.parse_args(argv)


def harmonic_summary(folder, image_size: int, crop_ratio: float, results_dir) -> dict:
    """The harmonic fill's scores on `folder` (utils.evaluation.evaluate_folder, on the CPU): its mean low-pass hole
    PSNR, and the truth's own chroma and stripe shares (`chroma_truth`, `stripes_truth`) on the same photos."""
    import torch
    from models.baselines import BASELINES
    from utils.evaluation import evaluate_folder
    return evaluate_folder(BASELINES["harmonic"], folder, image_size, crop_ratio, results_dir,
                           torch.device("cpu"), save_images=False, desc="harmonic fill")


HARMONIC_KEYS = ("psnr_lowpass", "chroma_truth", "stripes_truth")


def cached_harmonic_summary(folder, image_size: int, crop_ratio: float, results_dir, cache=None) -> dict:
    """`harmonic_summary`'s HARMONIC_KEYS, read from the JSON file `cache` when it holds them for this folder (its
    path relative to the cache's, so that a packed copy keeps its entries), image size and crop ratio; else scored
    and, with `cache`, added to it (atomically). The harmonic fill's conjugate gradients run on the CPU: minutes at
    256², and far more on a machine whose cores are busy with training."""
    import json
    import os
    if cache is None:
        return harmonic_summary(folder, image_size, crop_ratio, results_dir)
    cache = Path(cache)
    relative = Path(os.path.relpath(Path(folder).resolve(), cache.parent.resolve())).as_posix()
    key = f"{relative} {image_size} {crop_ratio:g}"
    try:
        entries = json.loads(cache.read_text()) if cache.is_file() else {}
    except ValueError as exc:
        raise InputError(f"--harmonic_cache {cache}: not JSON ({exc}): delete it to score again") from None
    if key not in entries:
        from utils.files import write_text_atomic
        summary = harmonic_summary(folder, image_size, crop_ratio, results_dir)
        entries[key] = {name: float(summary[name]) for name in HARMONIC_KEYS}
        write_text_atomic(json.dumps(entries, indent=1, sort_keys=True) + "\n", cache)
    return entries[key]


def finite_or_none(bound):
    """A share bound as pick_row takes it: None (no bound) for None or inf (`--chroma_margin inf`)."""
    return None if bound is None or bound == float("inf") else bound


def pick_row(rows: list, line: float, max_chroma: float = None, max_stripes: float = None,
             min_placement: float = None) -> dict:
    """The row with the lowest `swd` among those with `psnr_lowpass` >= line and, where a bound is given, `chroma`
    <= max_chroma, `stripes` <= max_stripes and `placement` >= min_placement; InputError saying which guard failed
    when none qualifies. Rows written before a column existed (older runs' val_metrics.csv) fail its bound."""
    kept = [row for row in rows if float(row["psnr_lowpass"]) >= line]
    if not kept:
        best = max(float(row["psnr_lowpass"]) for row in rows)
        raise InputError(f"no checkpoint passes the rule: none keeps the layout (the best val low-pass hole PSNR is "
                         f"{best:.2f} dB, under the line {line:.2f} dB)")
    # (column, bound, +1 for an upper bound / -1 for a lower one, what it guards against, how a miss reads)
    guards = (("chroma", max_chroma, 1, "colour sparkle", "within the chroma share bound"),
              ("stripes", max_stripes, 1, "stripes", "within the stripes share bound"),
              ("placement", min_placement, -1, "detail placement", "at or above the placement bound"))
    for column, bound, sign, what, bound_text in guards:
        if bound is None:
            continue
        scored = [row for row in kept if row.get(column) not in (None, "")]
        within = [row for row in scored if sign * float(row[column]) <= sign * bound]
        if not within:
            values = [float(row[column]) for row in scored]
            found = (f"the {'least' if sign > 0 else 'most'} is {(min if sign > 0 else max)(values):.2f}" if values
                     else f"the rows have no {column} column")
            raise InputError(f"no checkpoint passes the rule: of the {len(kept)} that keep the layout, none keeps its "
                             f"{what} {bound_text} {bound:.2f} ({found})")
        kept = within
    return min(kept, key=lambda row: float(row["swd"]))


def main(args):
    path = Path(args.val_metrics)
    if not path.is_file():
        raise InputError(f"--val_metrics {path} not found (train with --val_dir to write it)")
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    missing = [column for column in VAL_COLUMNS if column not in (rows[0] if rows else {})]
    if missing:
        raise InputError(f"--val_metrics {path}: no rows with {', '.join(missing)} (main.py --val_dir writes them)")
    for number, row in enumerate(rows, start=2):  # the header is line 1
        for column in VAL_COLUMNS:
            if column == "swd_levels":
                continue
            try:
                float(row[column])
            except (TypeError, ValueError):
                raise InputError(f"--val_metrics {path}, line {number}: {column} is {row[column]!r}, not a "
                                 "number") from None
    checkpoint_dir = Path(args.checkpoint_dir) if args.checkpoint_dir else path.parent.parent
    checkpoints = {int(row["epoch"]): checkpoint_dir / f"checkpoint_epoch_{int(row['epoch'])}.pth" for row in rows}
    if args.harmonic_dir:
        if not Path(args.harmonic_dir).is_dir():
            raise InputError(f"--harmonic_dir {args.harmonic_dir} is not a folder")
        from utils.checkpoint import checkpoint_config
        from utils.files import check_checkpoint_path
        config = checkpoint_config(check_checkpoint_path(checkpoints[int(rows[0]["epoch"])], "--checkpoint_dir"),
                                   kinds=("gan",))
        harmonic = cached_harmonic_summary(args.harmonic_dir, config["image_size"], config["crop_ratio"],
                                           path.parent / "harmonic", args.harmonic_cache)
        line = harmonic["psnr_lowpass"] + args.margin
        max_chroma = harmonic["chroma_truth"] + args.chroma_margin
        max_stripes = harmonic["stripes_truth"] + args.stripe_margin
        print(f"the truth on {args.harmonic_dir}: chroma share {harmonic['chroma_truth']:.2f}, stripe share "
              f"{harmonic['stripes_truth']:.2f}")
    else:
        line, max_chroma, max_stripes = args.min_lowpass, None, None
    max_chroma = args.max_chroma if args.max_chroma is not None else max_chroma
    max_stripes = args.max_stripes if args.max_stripes is not None else max_stripes
    row = pick_row(rows, line, finite_or_none(max_chroma), finite_or_none(max_stripes), args.min_placement)
    checkpoint = checkpoints[int(row["epoch"])]
    print(f"pick: epoch {row['epoch']} (step {row['step']}) of {len(rows)} scored: patch SWD {float(row['swd']):.1f} "
          f"({row['swd_levels']}), low-pass {float(row['psnr_lowpass']):.2f} dB (line {line:.2f}), hole PSNR "
          f"{float(row['psnr_hole']):.2f}, placement {float(row['placement']):.2f}, sharpness "
          f"{float(row['sharpness']):.2f}, chroma {float(row.get('chroma') or 'nan'):.2f}, stripes "
          f"{float(row.get('stripes') or 'nan'):.2f}: {checkpoint}")
    if args.export:
        from utils.files import check_checkpoint_path
        check_checkpoint_path(str(checkpoint), "--checkpoint_dir")
        from utils.loading import export_generator, load_generator
        generator, config = load_generator(checkpoint)
        print(f"exported {export_generator(generator, config, args.export)}")


if __name__ == "__main__":
    from utils.cli import run
    sys.exit(run(main, parse_args))

"""The eval and eval_2 modes, shared by every method (GAN, diffusion, training-free baselines).

A method is a `fill(masked, mask) -> completed` callable on (B, 3, S, S) / (B, 1, S, S) tensors in
[-1, 1] (mask 1 = generate), so every method is scored by exactly the same code.
"""
import csv
import json
import os
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from data.datasets import ImageFolderDataset, load_eval_image, to_float, to_uint8
from data.masks import apply_mask, compose_two
from utils.errors import InputError
from utils.images import save_png
from utils.metrics import (EffNetDistance, EffNetFrechetDistance, FIDMetric, LPIPSMetric, image_metrics,
                           ratio_of_means)

METRIC_COLUMNS = ("psnr", "ssim", "psnr_hole", "ssim_hole", "l1_hole", "sharpness", "checkerboard",
                  "effnet_distance", "lpips")
RATIO_COLUMNS = ("sharpness", "checkerboard")  # summarised as a ratio of sums (utils.metrics.ratio_of_means)
OPTIONAL_COLUMNS = ("effnet_distance", "lpips")  # need pretrained weights
AUTOCAST_DTYPES = {"no": None, "bf16": torch.bfloat16, "fp16": torch.float16}  # --mixed_precision


def eval_device(cpu: bool = False) -> torch.device:
    """Where eval and eval_2 run: the GPU if there is one, unless --cpu."""
    return torch.device("cuda" if torch.cuda.is_available() and not cpu else "cpu")


def quantize(image: torch.Tensor) -> torch.Tensor:
    """What a saved PNG holds: metrics are computed on the 8-bit image, not the float output."""
    return to_float(to_uint8(image))


def write_csv_atomic(rows: list, columns, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".csv", dir=path.parent)
    with os.fdopen(fd, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)
    return path


def read_csv_rows(path) -> list:
    """Rows of a CSV file as dicts ([] if the file does not exist)."""
    path = Path(path)
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@torch.no_grad()
def evaluate_folder(fill, test_dir, image_size: int, crop_ratio: float, results_dir, device,
                    batch_size: int = 8, save_images: bool = True, desc: str = "eval") -> dict:
    """Fill the gap of every image under `test_dir`; write images + metrics.csv; return the averages.

    Writes results_dir/<name>/{original,input,generated}.png, results_dir/metrics.csv (one row per
    image) and results_dir/metrics_summary.json (means, seconds per image, unavailable metrics).
    metrics.csv is written last, so a run that stopped early has none.
    """
    dataset = ImageFolderDataset(test_dir, image_size, crop_ratio, train=False)
    results_dir = Path(results_dir)
    lpips_metric, fid_metric = LPIPSMetric(device), FIDMetric(device)
    effnet_metric, fid_effnet_metric = EffNetDistance(device), EffNetFrechetDistance(device)
    rows, fill_seconds = [], 0.0
    for batch in tqdm(DataLoader(dataset, batch_size=batch_size), desc=desc, unit="batch"):
        image, mask = batch["image"].to(device), batch["mask"].to(device)
        masked = apply_mask(image, mask)
        start = time.perf_counter()
        output = quantize(fill(masked, mask).float())
        if output.is_cuda:
            torch.cuda.synchronize()
        fill_seconds += time.perf_counter() - start
        scores = image_metrics(output, image, mask)
        nan = [float("nan")] * len(scores)
        lpips_scores = lpips_metric(output, image) if lpips_metric.available else nan
        effnet_scores = effnet_metric(output, image) if effnet_metric.available else nan
        for metric in (fid_metric, fid_effnet_metric):
            if metric.available:
                metric.update(output, image)
        for i, name in enumerate(batch["name"]):
            rows.append({"image": name, **scores[i], "effnet_distance": effnet_scores[i], "lpips": lpips_scores[i]})
            if save_images:
                for file_name, tensor in (("original", image), ("input", masked), ("generated", output)):
                    save_png(tensor[i], results_dir / name / f"{file_name}.png")
    write_csv_atomic(rows, ("image",) + METRIC_COLUMNS, results_dir / "metrics.csv")
    summary = {k: sum(r[k] for r in rows) / len(rows) for k in METRIC_COLUMNS
               if k not in RATIO_COLUMNS + OPTIONAL_COLUMNS}
    summary.update({k: ratio_of_means(rows, k) for k in RATIO_COLUMNS})
    metrics = {"effnet_distance": effnet_metric, "lpips": lpips_metric, "fid_effnet": fid_effnet_metric,
               "fid": fid_metric}
    for key in OPTIONAL_COLUMNS:
        summary[key] = (sum(r[key] for r in rows) / len(rows)) if metrics[key].available else None
    for key in ("fid_effnet", "fid"):
        summary[key] = metrics[key].compute() if metrics[key].available else None
    summary["unavailable"] = {name: m.reason for name, m in metrics.items() if not m.available}
    summary["num_images"], summary["seconds_per_image"] = len(rows), fill_seconds / len(rows)
    (results_dir / "metrics_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def run_eval_mode(fill, args, image_size: int, crop_ratio: float, device) -> None:
    """--mode eval (a folder -> images + metrics.csv) or eval_2 (two photos -> one filled image)."""
    if args.mode == "eval":
        summary = evaluate_folder(fill, args.test_dir, image_size, crop_ratio, args.results_dir, device,
                                  batch_size=args.batch_size)
        print_summary(summary, args.results_dir)
    else:
        path = fill_two_images(fill, args.image1, args.image2, image_size, crop_ratio, args.results_dir, device,
                               output=args.output)
        print(f"wrote {path}")


def print_summary(summary: dict, results_dir) -> None:
    """The averages, one per line, as a user reads them in a terminal."""
    print(f"{summary['num_images']} images -> {results_dir}/metrics.csv")
    print("  PSNR {psnr:.2f} dB | SSIM {ssim:.4f} | hole PSNR {psnr_hole:.2f} dB | hole SSIM {ssim_hole:.4f} "
          "| hole L1 {l1_hole:.4f} | {seconds_per_image:.3f} s/image".format(**summary))
    print("  sharpness {sharpness:.3f} | checkerboard {checkerboard:.3f}   (output / truth in the hole: "
          "< 0.5 blur, > 1.5 noise or grid)".format(**summary))
    labels = {"effnet_distance": "EfficientNet perceptual distance", "fid_effnet": "Frechet distance "
              "(EfficientNet-Lite0 features; not Inception FID)", "lpips": "LPIPS", "fid": "FID"}
    for name, label in labels.items():
        if summary[name] is not None:
            print(f"  {label} {summary[name]:.4f}")
        else:
            print(f"  {label} unavailable: {summary['unavailable'][name]}")


@torch.no_grad()
def fill_two_images(fill, image1, image2, image_size: int, crop_ratio: float, results_dir, device,
                    output=None) -> Path:
    """eval_2: bottom-left patch of image1 + top-right patch of image2 -> filled image.

    Each photo (any size/aspect) is resized on its shorter side and centre-cropped to S x S. Writes
    results_dir/<stem1>_<stem2>_eval_2/{image1,image2,input_combined,generated_combined}.png, or
    only the filled image to `output`. Returns the filled image's path.
    """
    if not image1 or not image2:
        raise InputError("eval_2 needs two photos: pass --image1 PATH --image2 PATH")
    first, second = load_eval_image(image1, image_size), load_eval_image(image2, image_size)
    combined, mask = compose_two(first, second, crop_ratio)
    filled = fill(combined[None].to(device), mask[None].to(device))[0].float().cpu()
    if output:
        return save_png(filled, output)
    folder = Path(results_dir) / f"{Path(image1).stem}_{Path(image2).stem}_eval_2"
    for name, tensor in (("image1", first), ("image2", second), ("input_combined", combined)):
        save_png(tensor, folder / f"{name}.png")
    return save_png(filled, folder / "generated_combined.png")  # last: its presence means complete

"""The eval and eval_2 modes, shared by every method (GAN, diffusion, training-free baselines).

A method is a `fill(masked, mask) -> completed` callable on (B, 3, S, S) / (B, 1, S, S) tensors in
[-1, 1] (mask 1 = generate), so every method is scored by exactly the same code.
"""
import csv
import hashlib
import json
import time
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from data.datasets import ImageFolderDataset, eval_transform
from data.images import MAX_PIXELS, load_image
from data.masks import apply_mask, compose_two
from utils.cli import given_flags, photo_pixel_limit
from utils.errors import InputError, warn
from utils.files import atomic_write, write_text_atomic
from utils.fullres import fill_at_resolution, model_input
from utils.images import image_format, save_image, save_png, to_float, to_uint8
from utils.metrics import (EffNetDistance, EffNetFrechetDistance, FIDMetric, LPIPSMetric, image_metrics,
                           ratio_of_means)
from utils.realism import PatchSWD, detail_placement, lowpass_hole_psnr

METRIC_COLUMNS = ("psnr", "ssim", "psnr_hole", "ssim_hole", "l1_hole", "psnr_lowpass", "placement", "sharpness",
                  "checkerboard", "stripes", "stripes_truth", "chroma", "chroma_truth", "effnet_distance",
                  "lpips")
RATIO_COLUMNS = ("sharpness", "checkerboard")  # summarised as a ratio of sums (utils.metrics.ratio_of_means)
OPTIONAL_COLUMNS = ("effnet_distance", "lpips")  # need pretrained weights


def eval_device(cpu: bool = False) -> torch.device:
    """Where eval and eval_2 run: the GPU if there is one, unless --cpu."""
    return torch.device("cuda" if torch.cuda.is_available() and not cpu else "cpu")


def quantize(image: torch.Tensor) -> torch.Tensor:
    """What a saved PNG holds: metrics are computed on the 8-bit image, not the float output."""
    return to_float(to_uint8(image))


def write_csv_atomic(rows: list, columns, path) -> Path:
    def write(tmp):
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(columns), extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)
    return atomic_write(path, write)


def read_csv_rows(path) -> list:
    """Rows of a CSV file as dicts ([] if the file does not exist)."""
    path = Path(path)
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@torch.no_grad()
def evaluate_folder(fill, test_dir, image_size: int, crop_ratio: float, results_dir, device,
                    batch_size: int = 8, save_images: bool = True, desc: str = "eval", output_size: int = None,
                    max_pixels: int = MAX_PIXELS) -> dict:
    """Fill the gap of every image under `test_dir`; write images + metrics.csv; return the averages.

    Writes results_dir/<name>/{original,input,generated}.png, results_dir/metrics.csv (one row per
    image) and results_dir/metrics_summary.json (means, seconds per image, unavailable metrics).
    metrics.csv is written last, so a run that stopped early has none. The method fills at
    `image_size`; with `output_size` N (another size), each photo is scored at N x N: the fill is
    upsampled into the hole and the known squares are the photo's own pixels (utils/fullres.py).
    """
    size = output_size or image_size
    dataset = ImageFolderDataset(test_dir, size, crop_ratio, train=False, max_pixels=max_pixels)
    results_dir = Path(results_dir)
    lpips_metric, fid_metric = LPIPSMetric(device), FIDMetric(device)
    effnet_metric, fid_effnet_metric = EffNetDistance(device), EffNetFrechetDistance(device)
    swd = PatchSWD()
    rows, fill_seconds = [], 0.0
    for batch in tqdm(DataLoader(dataset, batch_size=batch_size), desc=desc, unit="batch"):
        image, mask = batch["image"].to(device), batch["mask"].to(device)
        masked = apply_mask(image, mask)
        start = time.perf_counter()
        if size == image_size:
            output = quantize(fill(masked, mask).float())
        else:
            small, small_mask = model_input(image, image_size, crop_ratio, quantize)
            output = quantize(fill_at_resolution(fill, small, small_mask, image, crop_ratio))
        if output.is_cuda:
            torch.cuda.synchronize()
        fill_seconds += time.perf_counter() - start
        scores = image_metrics(output, image, mask)
        lowpass_scores, placements = lowpass_hole_psnr(output, image, mask), detail_placement(output, image, mask)
        for row, low, place in zip(scores, lowpass_scores, placements):
            row["psnr_lowpass"], row["placement"] = low, place
        swd.update(output, image, mask)
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
               if k not in RATIO_COLUMNS + OPTIONAL_COLUMNS + ("placement",)}
    placed = [r["placement"] for r in rows if r["placement"] == r["placement"]]  # images whose truth's detail varies
    summary["placement"] = sum(placed) / len(placed) if placed else float("nan")
    summary.update(swd.compute())
    summary.update({k: ratio_of_means(rows, k) for k in RATIO_COLUMNS})
    metrics = {"effnet_distance": effnet_metric, "lpips": lpips_metric, "fid_effnet": fid_effnet_metric,
               "kid_effnet": fid_effnet_metric, "fid": fid_metric}
    for key in OPTIONAL_COLUMNS:
        summary[key] = (sum(r[key] for r in rows) / len(rows)) if metrics[key].available else None
    for key in ("fid_effnet", "fid"):
        summary[key] = metrics[key].compute() if metrics[key].available else None
    summary["kid_effnet"] = fid_effnet_metric.compute_kid() if fid_effnet_metric.available else None
    summary["unavailable"] = {name: m.reason for name, m in metrics.items() if not m.available}
    summary["num_images"], summary["seconds_per_image"] = len(rows), fill_seconds / len(rows)
    write_text_atomic(json.dumps(summary, indent=2) + "\n", results_dir / "metrics_summary.json")
    return summary


def probe_inputs(test_dir, image_size: int, crop_ratio: float, batch_size: int, floors=(), checkpoints=(),
                 variants=None) -> tuple:
    """What the benchmarks/probe_*.py scripts compare: (batches, methods).

    batches: the eval crops of `test_dir`, as (truth, mask, masked) batches (data.datasets.masked_batches);
    methods: [(label, fill)], the training-free `floors` by name, then each utils.cli.CheckpointSpec of `checkpoints`
    as its generator (EMA or raw weights), followed by the (label, fill) pairs that `variants(label, generator)` adds.
    """
    from data.datasets import masked_batches
    from models.baselines import BASELINES
    from utils.loading import load_generator
    dataset = ImageFolderDataset(test_dir, image_size, crop_ratio, train=False)
    batches = list(masked_batches(dataset, range(len(dataset.files)), batch_size))
    methods = [(name, BASELINES[name]) for name in floors]
    for label, path, use_ema in checkpoints:
        generator, _ = load_generator(path, use_ema)
        methods.append((label, generator))
        methods += variants(label, generator) if variants else []
    return batches, methods


def run_eval_mode(fill, args, image_size: int, crop_ratio: float, device, model: str = None) -> None:
    """--mode eval (a folder -> images + metrics.csv) or eval_2 (two photos -> one filled image).

    image_size, crop_ratio: the method's own (a checkpoint's config). --image_size that differs is an
    error (a trained model fills at its size: --output_size sets the output's); --crop_ratio, when
    given, is used (the mask is an input of the network), with a warning if the model was trained
    with another. `model` names the checkpoint in messages.
    """
    given = given_flags(args)
    model = model or "the model"
    if args.mode == "eval_2" and args.output and "results_dir" in given:
        raise InputError("--output writes only the filled image, --results_dir the whole eval_2 folder: pass one")
    if "image_size" in given and args.image_size != image_size:
        raise InputError(f"--image_size {args.image_size}: {model} fills at {image_size}x{image_size}, the size it "
                         "was trained at; use --output_size N to set the size of the output (--output_size "
                         "model keeps the model's)")
    if "crop_ratio" in given and args.crop_ratio != crop_ratio:
        warn(f"--crop_ratio {args.crop_ratio} differs from the {crop_ratio} {model} was trained with: "
             "the fill may be worse")
        crop_ratio = args.crop_ratio
    output_size = getattr(args, "output_size", None)
    photo_limit = photo_pixel_limit(args)
    if args.mode == "eval":
        size = image_size if output_size in (None, "model") else output_size
        summary = evaluate_folder(fill, args.test_dir, image_size, crop_ratio, args.results_dir, device,
                                  batch_size=args.batch_size, output_size=size, max_pixels=photo_limit)
        print_summary(summary, args.results_dir, size, image_size)
    else:
        # --output_size names its own folder, so that it does not replace the fill at the photos' size.
        path = fill_two_images(fill, args.image1, args.image2, image_size, crop_ratio, args.results_dir, device,
                               output=args.output, output_size=output_size or "photos", max_pixels=photo_limit,
                               size_in_folder_name=output_size is not None)
        with Image.open(path) as im:
            width, height = im.size
        how = "" if width == image_size else (f"; the model filled the gap at {image_size}x{image_size}, upsampled "
                                              "into the hole, the known squares are the photos' own pixels")
        print(f"wrote {path} ({width}x{height}{how})")
        if not args.output:
            print("  beside it: image1.png, image2.png (the two photos, cropped) and input_combined.png")


def print_summary(summary: dict, results_dir, size: int = None, model_size: int = None) -> None:
    """Where the outputs went, and the averages, one per line, as a user reads them in a terminal."""
    results_dir = Path(results_dir)
    at = f" at {size}x{size}" + (f" (filled at {model_size}x{model_size}, upsampled)" if size != model_size else "") \
        if size else ""
    print(f"{summary['num_images']} images{at} -> {results_dir / 'metrics.csv'}, "
          f"{results_dir / 'metrics_summary.json'} and {results_dir}/<image>/{{original,input,generated}}.png")
    print("  PSNR {psnr:.2f} dB | SSIM {ssim:.4f} | hole PSNR {psnr_hole:.2f} dB | hole SSIM {ssim_hole:.4f} "
          "| hole L1 {l1_hole:.4f} | {seconds_per_image:.3f} s/image".format(**summary))
    print("  sharpness {sharpness:.3f} | checkerboard {checkerboard:.3f}   (output / truth in the hole: "
          "< 0.5 blur, > 1.5 noise or grid) | stripe share {stripes:.2f} (truth {stripes_truth:.2f}) | chroma share "
          "{chroma:.2f} (truth {chroma_truth:.2f})".format(**summary))
    print(f"  patch SWD {format_swd(summary)} (truth against truth: {summary['swd_floor']:.1f}) | low-pass hole PSNR "
          f"{summary['psnr_lowpass']:.2f} dB | detail placement {summary['placement']:.3f}")
    labels = {"effnet_distance": "EfficientNet perceptual distance", "fid_effnet": "Frechet distance "
              "(EfficientNet-Lite0 features; not Inception FID)", "kid_effnet": "KID (EfficientNet-Lite0 features)",
              "lpips": "LPIPS", "fid": "FID"}
    for name, label in labels.items():
        if summary[name] is not None:
            print(f"  {label} {summary[name]:.4f}")
        else:
            print(f"  {label} unavailable: no pretrained weights here (metrics_summary.json says where to put them)")


def format_swd(summary: dict) -> str:
    """'34.4 (23.8 / 44.4 / 54.3 / 15.2)': the mean patch SWD and its levels, finest first."""
    return f"{summary['swd']:.1f} (" + " / ".join(f"{v:.1f}" for v in summary["swd_levels"]) + ")"


SCORE_COLUMNS = ("hole PSNR | low-pass PSNR | sharpness | placement | patch SWD (128 / 64 / 32 / 16 px) | checkerboard "
                 "| stripes | chroma")


def markdown_head(*titles: str) -> str:
    """A markdown table's header and delimiter rows for these column titles (SCORE_COLUMNS counts as its columns)."""
    header = " | ".join(titles)
    return f"| {header} |\n|" + "---|" * (header.count("|") + 1)


def markdown_scores(summary: dict) -> str:
    """The realism columns of a markdown row (SCORE_COLUMNS) from an `evaluate_folder` summary."""
    return (f"{summary['psnr_hole']:.2f} | {summary['psnr_lowpass']:.2f} | {summary['sharpness']:.2f} | "
            f"{summary['placement']:.2f} | {format_swd(summary)} | {summary['checkerboard']:.2f} | "
            f"{summary['stripes']:.2f} | {summary['chroma']:.2f}")


def pair_name(image1, image2) -> str:
    """<stem1>_<stem2>_<6 hex>: the hash of both resolved paths keeps pairs of same-named photos from
    different folders apart."""
    key = "\0".join(str(Path(p).resolve()) for p in (image1, image2))
    return f"{Path(image1).stem}_{Path(image2).stem}_{hashlib.sha1(key.encode()).hexdigest()[:6]}"


def output_path(output, image1, image2) -> Path:
    """--output as a file path: an existing folder means <folder>/<pair name>.png; the format must be known."""
    path = Path(output)
    if path.is_dir():
        path = path / f"{pair_name(image1, image2)}.png"
    image_format(path, "--output")
    return path


@torch.no_grad()
def fill_two_photos(fill, photos, image_size: int, crop_ratio: float, device, output_size="model",
                    names=("image1", "image2")) -> tuple:
    """The in-memory core of eval_2, shared by `fill_two_images` (the CLI) and the web page (app.py).

    photos: two RGB PIL images of any size/aspect; each is resized on its shorter side and centre-cropped.
    The method fills at image_size; output_size is "model" (that size), "photos" (the smaller of the two
    photos' shorter sides: no photo is upscaled) or a side N: the fill is then upsampled into the hole and
    the known squares are the photos' own pixels at N (utils/fullres.py). names: the photos in warnings.
    Returns (photo 1, photo 2, input (known squares, hole 0 = grey), filled), each float (3, N, N) in
    [-1, 1] on the CPU.
    """
    if output_size == "photos":
        size = min(min(photo.size) for photo in photos)
    else:
        size = image_size if output_size == "model" else int(output_size)
    for name, photo in zip(names, photos):
        if min(photo.size) < size:
            warn(f"{name} is {photo.size[0]}x{photo.size[1]}: upscaled to fill {size}x{size}")
    small = [to_float(eval_transform(photo, image_size)) for photo in photos]
    combined, mask = compose_two(*small, crop_ratio)
    if size == image_size:
        first, second = small
        filled = fill(combined[None].to(device), mask[None].to(device))[0].float().cpu()
    else:
        first, second = (to_float(eval_transform(photo, size)) for photo in photos)
        known, _ = compose_two(first, second, crop_ratio)
        filled = fill_at_resolution(fill, combined[None].to(device), mask[None].to(device), known[None].to(device),
                                    crop_ratio)[0].float().cpu()
        combined = known
    return first, second, combined, filled


def fill_two_images(fill, image1, image2, image_size: int, crop_ratio: float, results_dir, device,
                    output=None, output_size="model", max_pixels: int = MAX_PIXELS,
                    size_in_folder_name: bool = False) -> Path:
    """eval_2: bottom-left square of image1 + top-right square of image2 -> filled image.

    The photos and output_size are those of `fill_two_photos`. Writes
    results_dir/<pair name>_eval_2/{image1,image2,input_combined,generated_combined}.png (see `pair_name`;
    _eval_2_<N>px with size_in_folder_name and an output size N other than the photos'), or only the filled
    image to `output` (format from its extension; a folder: the pair name inside it). Returns the filled image's
    path.
    """
    if not image1 or not image2:
        raise InputError("eval_2 needs two photos: pass --image1 PATH --image2 PATH")
    target = output_path(output, image1, image2) if output else None
    # A JPEG at least 8x larger than the output needs is decoded at a reduced scale (libjpeg's DCT scaling),
    # keeping 4x the pixels the output needs; smaller photos are decoded whole, so that the known squares are
    # the photos' own pixels. At the photos' own resolution nothing is reduced.
    needed = image_size if output_size == "model" else None if output_size == "photos" else int(output_size)
    draft = 4 * max(needed, image_size) if needed else None
    photos = [load_image(path, max_pixels=max_pixels, draft_side=draft) for path in (image1, image2)]
    first, second, combined, filled = fill_two_photos(fill, photos, image_size,
                                                      crop_ratio, device, output_size, names=(image1, image2))
    if target:
        return save_image(filled, target, "--output")
    side = f"_{needed}px" if size_in_folder_name and needed else ""
    folder = Path(results_dir) / f"{pair_name(image1, image2)}_eval_2{side}"
    for name, tensor in (("image1", first), ("image2", second), ("input_combined", combined)):
        save_png(tensor, folder / f"{name}.png")
    return save_png(filled, folder / "generated_combined.png")  # last: its presence means complete

"""The comparison behind pretrained_diffusion.ipynb: GAN vs scratch diffusion vs pretrained Stable Diffusion.

Each method is loaded by one function that never raises for missing weights: it returns a `Method`
whose `reason` says why it is unavailable and how to provide it, so the notebook runs with whatever
is there. Every available method is then filled and scored by utils/evaluation.py (same test
images, same gap masks from data/masks.py, same metric code) at one comparison size S; a model
whose own size differs runs at its size, resized to S (`sd.fill.at_resolution`).

Results under `results_dir`: comparison.csv / comparison.md (one row per method), examples.png,
metrics.png, eval_2.png, and each method's images and metrics.csv in results_dir/<method key>/.
"""
import csv
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import torch
from matplotlib.figure import Figure
from PIL import Image

from data.datasets import load_eval_image
from data.images import check_image_size, list_images
from data.masks import check_crop_ratio, masked_input
from models import count_parameters
from models.baselines import BASELINES
from utils.loading import SHIPPED_MODEL, diffusion_fill, generator_fill, load_diffusion_model, load_generator
from models.options import SAMPLERS
from sd.fill import DEFAULT_PROMPT, at_resolution, make_sd_fill, native_size
from sd.pipelines import INPAINT_MODELS, PipelineLoadError, load_inpaint_pipeline
from utils.errors import InputError
from utils.evaluation import evaluate_folder, fill_two_images, write_csv_atomic

DEFAULT_SIZE, DEFAULT_CROP_RATIO = 128, 0.4  # main.py's shipped model; used when no checkpoint sets them
COLUMNS = ("method", "runs_at_px", "scored_at_px", "params_M", "psnr_hole", "ssim_hole", "l1_hole", "psnr_lowpass",
           "sharpness", "placement", "swd", "psnr", "ssim", "seconds_per_image", "note")
BASELINE_NAMES = {"mean": "mean colour (floor)", "telea": "Telea inpainting (floor)",
                  "harmonic": "harmonic fill (floor)", "fsr": "OpenCV FSR (floor)",
                  "shiftmap": "OpenCV shift-map, exemplar-based (floor)"}


@dataclass
class Method:
    """One column of the comparison. `make_fill()` returns a fresh, freshly seeded fill(masked, mask)."""
    key: str  # folder name under results_dir
    name: str  # label in the table and figures
    make_fill: object = None  # None: unavailable, see `reason`
    runs_at: int = None  # the model's own working size in px (None: any size)
    params: int = 0
    config: dict = field(default_factory=dict)  # the checkpoint's config (image_size, crop_ratio)
    source: str = ""
    reason: str = ""

    @property
    def available(self) -> bool:
        return self.make_fill is not None


# --- Loading, one function per kind of method ----------------------------------------------------
def baseline_methods(names) -> list:
    """The training-free floors of models/baselines.py, e.g. names = "telea" or ["mean", "telea"]."""
    names = [n.strip() for n in (names.split(",") if isinstance(names, str) else names) if n.strip()]
    unknown = [n for n in names if n not in BASELINES]
    if unknown:
        raise InputError(f"unknown baseline(s) {unknown}; choose from {sorted(BASELINES)}")
    return [Method(key=n, name=BASELINE_NAMES[n], make_fill=lambda n=n: BASELINES[n], source="models/baselines.py")
            for n in names]


def load_gan(path, device) -> Method:
    """The GAN of main.py from a training checkpoint or generator export."""
    method = Method(key="gan", name="GAN", source=str(path))
    if not path:
        method.reason = "no GAN_CHECKPOINT given"
        return method
    try:
        generator, config = load_generator(path)
    except InputError as exc:
        method.reason = (f"{exc}. Set GAN_CHECKPOINT to a file written by `python main.py --mode train` "
                         f"(a checkpoint, or its --export); the shipped model is {SHIPPED_MODEL}")
        return method
    method.make_fill = lambda: at_resolution(generator_fill(generator, device, "no"), config["image_size"])
    method.runs_at, method.params, method.config = config["image_size"], count_parameters(generator), config
    return method


def load_scratch_diffusion(path, device, num_steps: int, seed: int, scheduler: str = "ddim") -> Method:
    """The from-scratch diffusion baseline of diffusion.py (EMA weights), sampled in `num_steps` steps."""
    if scheduler not in SAMPLERS:
        raise InputError(f"DIFFUSION_SCHEDULER={scheduler}: choose one of {', '.join(SAMPLERS)}")
    method = Method(key="scratch_diffusion", name=f"scratch diffusion ({scheduler} {num_steps} steps)",
                    source=str(path))
    if not path:
        method.reason = ("DIFFUSION_CHECKPOINT is empty: set it to checkpoints/diffusion_scenery_64.pth (shipped) "
                         "or to a checkpoint written by `python diffusion.py --mode train`")
        return method
    try:
        model, config, schedule_config = load_diffusion_model(path)
    except InputError as exc:
        method.reason = f"{exc}. Set DIFFUSION_CHECKPOINT to a file written by `python diffusion.py --mode train`"
        return method
    steps = min(num_steps, schedule_config["num_train_timesteps"])  # a DDPM cannot take more steps than T
    method.name = f"scratch diffusion ({scheduler} {steps} steps)"
    method.make_fill = lambda: at_resolution(
        diffusion_fill(model, schedule_config, device, scheduler, steps, seed, progress=False), config["image_size"])
    method.runs_at, method.params, method.config = config["image_size"], count_parameters(model), config
    return method


def load_pretrained_sd(name_or_path, device, dtype, prompt: str = DEFAULT_PROMPT, negative_prompt: str = None,
                       num_steps: int = 50, guidance_scale: float = 7.5, strength: float = 1.0, seed: int = 0,
                       pipe_size: int = None) -> Method:
    """A pretrained SD / SDXL inpainting pipeline (hub id, local folder, or a key of INPAINT_MODELS)."""
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging
    name_or_path = INPAINT_MODELS.get(name_or_path, name_or_path)
    method = Method(key="pretrained_sd", name=f"pretrained SD ({num_steps} steps)", source=str(name_or_path))
    # One "Loading ..." progress bar per component is noise in a notebook.
    diffusers_logging.disable_progress_bar()
    transformers_logging.disable_progress_bar()
    try:
        # The error names `flag` followed by a path ("pass INPAINT_MODEL= DIR"): make it read as the
        # environment variable the notebook takes ("pass INPAINT_MODEL=DIR").
        pipe = load_inpaint_pipeline(name_or_path, device, dtype, flag="INPAINT_MODEL=")
    except PipelineLoadError as exc:
        method.reason = str(exc).replace("INPAINT_MODEL= ", "INPAINT_MODEL=")
        return method
    size = pipe_size or native_size(pipe)
    method.make_fill = lambda: make_sd_fill(pipe, prompt, negative_prompt, num_steps, guidance_scale, strength, seed,
                                            size)
    method.runs_at = size
    method.params = sum(count_parameters(c) for c in pipe.components.values() if isinstance(c, torch.nn.Module))
    return method


def comparison_geometry(methods, image_size: int = 0) -> tuple:
    """(S, crop_ratio) shared by all methods, from the first checkpoint that has them.

    S = `image_size` if given, else the first checkpoint's size (the GAN's, if loaded), else 128.
    The crop ratio (the gap) comes from that checkpoint, else main.py's default 0.4; a checkpoint
    trained on another gap is marked unavailable, since it would be scored on a task it never saw.
    """
    configs = [m.config for m in methods if m.available and m.config]
    crop_ratio = check_crop_ratio(configs[0]["crop_ratio"] if configs else DEFAULT_CROP_RATIO)
    size = check_image_size(image_size or (configs[0]["image_size"] if configs else DEFAULT_SIZE))
    for m in methods:
        if m.available and m.config and m.config["crop_ratio"] != crop_ratio:
            m.make_fill, m.reason = None, (f"trained on crop ratio {m.config['crop_ratio']}, the comparison uses "
                                           f"{crop_ratio}: train both models with the same --crop_ratio")
    return size, crop_ratio


def describe(methods, size: int, crop_ratio: float, test_dir) -> str:
    """What will be compared, and plainly which methods are skipped and how to provide them."""
    lines = [f"Comparison on {len(list_images(test_dir))} images of {test_dir}, scored at {size}x{size}, "
             f"gap crop ratio {crop_ratio} (data/masks.py)."]
    for m in methods:
        if m.available and not m.runs_at:
            lines.append(f"  OK       {m.name}: {m.source} (training-free)")
        elif m.available:
            resized = f", resized to {size} px for scoring" if m.runs_at != size else ""
            lines.append(f"  OK       {m.name}: {m.source} (runs at {m.runs_at} px{resized}, "
                         f"{m.params / 1e6:.3g} M parameters)")
        else:
            lines.append(f"  SKIPPED  {m.name}: {m.reason}")
    return "\n".join(lines)


# --- Running and scoring -------------------------------------------------------------------------
def _warm_up(method: Method, test_dir, size: int, crop_ratio: float, device) -> None:
    """One untimed fill, so that one-off costs (CUDA kernels, oneDNN plans) do not count as per-image time."""
    image = load_eval_image(list_images(test_dir)[0], size)[None].to(device)
    method.make_fill()(*masked_input(image, crop_ratio))


def run_comparison(methods, test_dir, size: int, crop_ratio: float, results_dir, device, batch_size: int = 4,
                   warm_up: bool = True) -> list:
    """Fill and score every available method with utils.evaluation.evaluate_folder; write comparison.csv/.md.

    Returns one row per method that ran (COLUMNS). A method that runs out of GPU memory is skipped
    with its reason set (lower the batch size), and the others still run.
    """
    results_dir, rows = Path(results_dir), []
    for m in (m for m in methods if m.available):
        try:
            if warm_up:
                _warm_up(m, test_dir, size, crop_ratio, device)
            summary = evaluate_folder(m.make_fill(), test_dir, size, crop_ratio, results_dir / m.key, device,
                                      batch_size=batch_size, desc=m.name)
        except torch.OutOfMemoryError as exc:
            torch.cuda.empty_cache()
            m.make_fill, m.reason = None, (f"out of GPU memory ({str(exc).splitlines()[0]}); lower BATCH_SIZE "
                                           "(or SD_SIZE), or use DTYPE=float16")
            print(f"SKIPPED {m.name}: {m.reason}")
            continue
        note = f"run at {m.runs_at} px, resized to {size} px" if m.runs_at and m.runs_at != size else ""
        rows.append({"method": m.name, "runs_at_px": m.runs_at or size, "scored_at_px": size,
                     "params_M": m.params / 1e6, **{k: summary[k] for k in COLUMNS if k in summary}, "note": note})
    write_csv_atomic(rows, COLUMNS, results_dir / "comparison.csv")
    (results_dir / "comparison.md").write_text(markdown_table(rows) + "\n")
    return rows


def markdown_table(rows: list) -> str:
    """The comparison as a markdown table (pandas' to_markdown needs `tabulate`, which we do not ship)."""
    header = ["method", "runs at (px)", "params (M)", "hole PSNR (dB)", "low-pass hole PSNR", "hole SSIM",
              "sharpness", "placement", "patch SWD", "s / image", "note"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        lines.append(f"| {r['method']} | {r['runs_at_px']} | {r['params_M']:.3g} | {r['psnr_hole']:.2f} | "
                     f"{r['psnr_lowpass']:.2f} | {r['ssim_hole']:.3f} | {r['sharpness']:.2f} | {r['placement']:.2f} | "
                     f"{r['swd']:.1f} | {r['seconds_per_image']:.3f} | {r['note']} |")
    return "\n".join(lines)


def two_image_inputs(image1, image2, test_dir) -> tuple:
    """The eval_2 photos: the given paths, or else the first two images of the test folder."""
    if image1 and image2:
        return Path(image1), Path(image2)
    files = list_images(test_dir)
    if len(files) < 2:
        raise InputError(f"eval_2 needs two photos: set IMAGE1 and IMAGE2 ({test_dir} has only one image)")
    return files[0], files[1]


def run_two_images(methods, image1, image2, size: int, crop_ratio: float, results_dir, device) -> dict:
    """eval_2 with every available method (utils.evaluation.fill_two_images) -> {method name: folder}."""
    folders = {}
    for m in (m for m in methods if m.available):
        path = fill_two_images(m.make_fill(), image1, image2, size, crop_ratio, Path(results_dir) / m.key, device)
        folders[m.name] = path.parent
    return folders


# --- Figures (matplotlib's Figure directly: no pyplot state, works with any notebook backend) -----
def _read(path):
    return Image.open(path).convert("RGB")


def _image_grid(rows: list, titles: list, path, cell: float = 2.0) -> Path:
    """rows: lists of (PIL image or None); one title per column."""
    fig = Figure(figsize=(cell * len(titles), cell * len(rows) + 0.4))
    axes = fig.subplots(len(rows), len(titles), squeeze=False)
    for i, row in enumerate(rows):
        for j, image in enumerate(row):
            ax = axes[i][j]
            ax.set_axis_off()
            if image is not None:
                ax.imshow(image)
            if i == 0:
                ax.set_title(textwrap.fill(titles[j], 22), fontsize=9)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    return path


def plot_examples(methods, results_dir, path=None, max_images: int = 6) -> Path:
    """input | each method | ground truth, one row per test image, from the PNGs that were scored."""
    results_dir, ran = Path(results_dir), [m for m in methods if m.available]
    if not ran:
        raise InputError("no method ran: see the SKIPPED lines above")
    with open(results_dir / ran[0].key / "metrics.csv") as f:
        names = [r["image"] for r in csv.DictReader(f)][:max_images]
    rows = [[_read(results_dir / ran[0].key / n / "input.png")]
            + [_read(results_dir / m.key / n / "generated.png") for m in ran]
            + [_read(results_dir / ran[0].key / n / "original.png")] for n in names]
    titles = ["input"] + [m.name for m in ran] + ["ground truth"]
    return _image_grid(rows, titles, path or results_dir / "examples.png")


def plot_metrics(rows: list, path, colours=None) -> Path:
    """Two bar charts: hole PSNR (higher is better) and seconds per image (log scale: the cost).

    rows: dicts with "method", "psnr_hole" and "seconds_per_image"; colours: one per row (optional).
    """
    fig = Figure(figsize=(11, 0.5 * len(rows) + 1.6))
    axes = fig.subplots(1, 2)
    labels = [r["method"] for r in rows]
    for ax, key, title in ((axes[0], "psnr_hole", "hole PSNR (dB), higher is better"),
                           (axes[1], "seconds_per_image", "seconds per image (log scale), lower is better")):
        values = [r[key] for r in rows]
        ax.barh(labels, values, color=colours or "#4c72b0")
        ax.invert_yaxis()
        ax.set_title(title, fontsize=10)
        for y, v in enumerate(values):
            ax.text(v, y, f" {v:.3g}", va="center", fontsize=8)
    axes[1].set_xscale("log")
    axes[1].set_yticklabels([])
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    return path


def plot_two_images(folders: dict, path) -> Path:
    """image 1 | image 2 | combined input | each method's fill (the eval_2 case)."""
    first = next(iter(folders.values()))
    row = [_read(first / f"{n}.png") for n in ("image1", "image2", "input_combined")]
    row += [_read(folder / "generated_combined.png") for folder in folders.values()]
    return _image_grid([row], ["image 1", "image 2", "input"] + list(folders), path, cell=2.4)


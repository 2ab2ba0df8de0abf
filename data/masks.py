"""The task geometry: which pixels are known and which the model must generate.

This module is the ONE place that defines the mask; `main.py`, `diffusion.py`, the notebook and the
tests all call it.

Convention (used everywhere in the project):
    mask == 1  ->  "generate": the pixel is part of the hole.
    mask == 0  ->  "known":    the pixel is given to the model and must be kept exactly.

The gap-filling task of the GAN Paint document: for a square image of side S and ratio r
(`--crop_ratio`, valid in (0, 0.5]), the known pixels are two squares of side p = int(S * r):
the bottom-left and the top-right corner. Everything else (about 1 - 2r² of the image, 68 % at
the default r = 0.4) is generated:

        +-----------+-----+
        |   hole    |known|  <- top-right p x p square (from image 2 in eval_2)
        |           +-----+
        |                 |
        +-----+           |
        |known|   hole    |  <- bottom-left p x p square (from image 1 in eval_2)
        +-----+-----------+

Random training masks (LaMa-style, pure numpy, `make_train_mask`) let one model also handle
boxes, free-form strokes and one-sided outpainting: `--mask_kinds gap,box,stroke,outpaint`.
"""
from __future__ import annotations  # tensor annotations without importing torch

import math
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # annotations only; see gap_mask
    import torch

from utils.errors import InputError

MASK_KINDS = ("gap", "box", "stroke", "outpaint")


def check_crop_ratio(crop_ratio: float) -> float:
    """Return `crop_ratio` or raise ValueError with a message that says how to fix it."""
    if not (0.0 < crop_ratio <= 0.5):
        raise InputError(f"--crop_ratio must be in (0, 0.5], got {crop_ratio}: the two known squares "
                         "must not overlap (try the default 0.4)")
    return crop_ratio


def patch_size(image_size: int, crop_ratio: float) -> int:
    """Side of each known square: int(S * r), at least 1 pixel."""
    check_crop_ratio(crop_ratio)
    return max(1, int(image_size * crop_ratio))


def known_squares(image_size: int, crop_ratio: float) -> tuple:
    """The two known squares as (top, left, side): bottom-left (image 1 in eval_2), then top-right (image 2)."""
    p = patch_size(image_size, crop_ratio)
    return (image_size - p, 0, p), (0, image_size - p, p)


def gap_mask_np(image_size: int, crop_ratio: float) -> np.ndarray:
    """(S, S) float32 mask, 1 = generate, 0 = known bottom-left / top-right squares."""
    mask = np.ones((image_size, image_size), dtype=np.float32)
    for top, left, side in known_squares(image_size, crop_ratio):
        mask[top:top + side, left:left + side] = 0.0
    return mask


def _axis_to_square(coords: np.ndarray, start: int, side: int) -> np.ndarray:
    """Per coordinate: how far outside [start, start + side) it lies (0 inside)."""
    return np.maximum(0, np.maximum(start - coords, coords - (start + side - 1)))


def _grid(image_size: int, window) -> tuple:
    """Row and column coordinates of the whole image, or of window = (rows slice, cols slice)."""
    rows, cols = window if window is not None else (slice(0, image_size), slice(0, image_size))
    return np.mgrid[rows, cols]


def distance_to_known(image_size: int, crop_ratio: float, per_square: bool = False, window=None) -> np.ndarray:
    """(S, S) float32: Euclidean distance in pixels from each pixel to the nearest known pixel (0 on the
    known squares, 1 on the hole pixels that touch them). The blend band of full-resolution fills.
    per_square: (2, S, S), the distance to each square (in the order of `known_squares`).
    window: (rows slice, cols slice) to compute only that part of the image."""
    yy, xx = _grid(image_size, window)
    distances = np.stack([np.hypot(_axis_to_square(yy, top, side), _axis_to_square(xx, left, side))
                          for top, left, side in known_squares(image_size, crop_ratio)]).astype(np.float32)
    return distances if per_square else distances.min(axis=0)


def mirror_into_known(image_size: int, crop_ratio: float, window=None) -> tuple:
    """(rows, cols), each (S, S) int64: for every pixel, the pixel of the nearest known square that mirrors
    it across the square's edges (itself on the known squares). image[..., rows, cols] continues each
    known square into the hole by reflection, for blends across the square's border. window: as in
    `distance_to_known` (the indices stay those of the whole image)."""
    yy, xx = _grid(image_size, window)
    (t1, l1, s1), (t2, l2, s2) = known_squares(image_size, crop_ratio)
    first, second = distance_to_known(image_size, crop_ratio, per_square=True, window=window)
    nearer_first = first <= second

    def reflect(coords, start, side):
        end = start + side - 1
        out = np.where(coords < start, 2 * start - 1 - coords, np.where(coords > end, 2 * end + 1 - coords, coords))
        return np.clip(out, start, end)
    rows = np.where(nearer_first, reflect(yy, t1, s1), reflect(yy, t2, s2))
    cols = np.where(nearer_first, reflect(xx, l1, s1), reflect(xx, l2, s2))
    return rows.astype(np.int64), cols.astype(np.int64)


def gap_mask(image_size: int, crop_ratio: float) -> torch.Tensor:
    """(1, S, S) float32 tensor version of `gap_mask_np`."""
    import torch  # here, not at the top: the command lines check --crop_ratio before torch is imported
    return torch.from_numpy(gap_mask_np(image_size, crop_ratio))[None]


def apply_mask(image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Zero the hole: image (..., 3, S, S) in [-1, 1], mask (..., 1, S, S) -> masked image.

    0 is mid-grey in [-1, 1], so the hole carries no information about the truth.
    """
    return image * (1.0 - mask)


def keep_known(masked: torch.Tensor, mask: torch.Tensor, filled: torch.Tensor) -> torch.Tensor:
    """The known pixels of `masked` exactly, the hole of `filled`: every fill's last step (known pixels are
    the photos' own)."""
    return filled * mask + masked * (1.0 - mask)


def masked_input(image: torch.Tensor, crop_ratio: float):
    """One image (3, S, S) or batch (B, 3, S, S) -> (masked image, mask) for the gap task."""
    mask = gap_mask(image.shape[-1], crop_ratio).to(image)
    if image.dim() == 4:
        mask = mask.expand(image.shape[0], 1, -1, -1)
    return apply_mask(image, mask), mask


def compose_two(image1: torch.Tensor, image2: torch.Tensor, crop_ratio: float):
    """eval_2 input: bottom-left square from image1, top-right square from image2.

    image1, image2: (3, S, S) in [-1, 1]. Returns (masked image (3, S, S), mask (1, S, S)).
    """
    if image1.shape != image2.shape:
        raise ValueError(f"images must have the same shape, got {tuple(image1.shape)} and {tuple(image2.shape)}")
    size = image1.shape[-1]
    combined = image1.new_zeros(image1.shape)
    for (top, left, side), image in zip(known_squares(size, crop_ratio), (image1, image2)):
        combined[..., top:top + side, left:left + side] = image[..., top:top + side, left:left + side]
    return combined, gap_mask(size, crop_ratio).to(image1)


# ----------------------------------------------------------------------------------------------
# Random training masks. Each returns an (S, S) float32 array with 1 = generate.
# Shapes follow LaMa's generators (saicinpainting/training/data/masks.py): boxes and thick
# free-form strokes; "outpaint" keeps one side of the image and generates the rest.

def _box_mask(size: int, rng: np.random.Generator) -> np.ndarray:
    mask = np.zeros((size, size), np.float32)
    for _ in range(rng.integers(1, 4)):
        h, w = rng.integers(size // 6, size // 2 + 1, size=2)
        y, x = rng.integers(0, size - h + 1), rng.integers(0, size - w + 1)
        mask[y:y + h, x:x + w] = 1.0
    return mask


def _stroke_mask(size: int, rng: np.random.Generator) -> np.ndarray:
    """Thick random polylines, drawn as discs along each segment (no OpenCV needed)."""
    mask = np.zeros((size, size), np.float32)
    yy, xx = np.mgrid[:size, :size]
    for _ in range(rng.integers(1, 4)):
        y, x = rng.uniform(0, size, size=2)
        radius = rng.uniform(size / 32, size / 10)
        for _ in range(rng.integers(2, 6)):
            angle, length = rng.uniform(0, 2 * math.pi), rng.uniform(size / 8, size / 3)
            ny = float(np.clip(y + length * math.sin(angle), 0, size - 1))
            nx = float(np.clip(x + length * math.cos(angle), 0, size - 1))
            for t in np.linspace(0, 1, max(2, int(length / radius) * 2)):
                cy, cx = y + t * (ny - y), x + t * (nx - x)
                mask[(yy - cy) ** 2 + (xx - cx) ** 2 <= radius ** 2] = 1.0
            y, x = ny, nx
    return mask


def _outpaint_mask(size: int, rng: np.random.Generator) -> np.ndarray:
    """Keep a band of 30-60 % on one random side, generate the rest."""
    mask = np.ones((size, size), np.float32)
    keep = int(size * rng.uniform(0.3, 0.6))
    side = rng.integers(4)
    if side == 0:
        mask[:keep] = 0
    elif side == 1:
        mask[-keep:] = 0
    elif side == 2:
        mask[:, :keep] = 0
    else:
        mask[:, -keep:] = 0
    return mask


def parse_mask_kinds(text: str) -> tuple:
    """'gap,box' -> ('gap', 'box'); raises ValueError naming the unknown kind."""
    kinds = tuple(k.strip() for k in text.split(",") if k.strip())
    unknown = [k for k in kinds if k not in MASK_KINDS]
    if unknown or not kinds:
        raise InputError(f"--mask_kinds: unknown kind(s) {unknown or text!r}; choose from {','.join(MASK_KINDS)}")
    return kinds


def make_train_mask(size: int, crop_ratio: float, kinds=("gap",), rng: np.random.Generator = None) -> np.ndarray:
    """One (S, S) training mask, 1 = generate, drawn uniformly from `kinds`."""
    rng = rng if rng is not None else np.random.default_rng()
    kind = kinds[rng.integers(len(kinds))]
    if kind == "gap":
        return gap_mask_np(size, crop_ratio)
    return {"box": _box_mask, "stroke": _stroke_mask, "outpaint": _outpaint_mask}[kind](size, rng)

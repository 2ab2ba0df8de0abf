"""Full-resolution fills: the model fills at its own size, the photos keep theirs.

A model works at S x S (128 for the shipped GAN); photos are larger. `fill_at_resolution` makes an
N x N result for any N:

  1. the model fills the gap at S (its usual input: the photos resized to S);
  2. the fill is resized to N and used in the hole;
  3. the two known squares (data/masks.py geometry at N) are pasted from the N x N photos, pixel-exact;
  4. a narrow band of the hole along the squares' border (`band_width`, at most 4 % of N) is blended so
     that the sharp photo and the softer upsampled fill meet without a step.

Blends (all touch only the band, never the known squares): "laplacian" (the default: multi-band blend
of the square mirrored into the band and the fill, Burt & Adelson 1983: low frequencies cross over
the whole band, fine detail over a few pixels), "poisson" (the fill plus the harmonic correction that
makes it continuous with the photo at the border, Perez et al. 2003), "feather" (linear cross-fade of
the mirrored square and the fill) and "none" (plain paste).

Why "laplacian" (benchmarks/bench_blend.py, the GAN shipped at the time, 128 px, each photo at its shorter side; band PSNR
against the photo, dB / seam step as a multiple of the photo's own, 1.0 = as smooth as the photo):

    photos                           none          feather       laplacian     poisson
    data/scenery/test (6, 320-410)   19.20 / 3.55  20.77 / 0.33  20.82 / 0.88  20.37 / 2.03
    6 large photos (640-769 px) *    20.32 / 4.74  22.46 / 0.20  22.72 / 1.09  21.92 / 1.71

* the first six photos of data/scenery_large/test whose shorter side is at least 600 px.
"laplacian" has the best band PSNR and the seam closest to the photo's; "feather" is smoother than
the photo (a faded mirror image shows), "poisson" keeps a visible line where the photo's texture stops.
"""
import math
from functools import lru_cache

import torch
import torch.nn.functional as F

from data.masks import distance_to_known, gap_mask, known_squares, masked_input, mirror_into_known
from models.harmonic import harmonic_fill

MAX_BAND_FRACTION = 0.04  # the band never exceeds 4 % of the side
DEFAULT_BLEND = "laplacian"


def resize(image: torch.Tensor, size: int) -> torch.Tensor:
    """(..., 3, H, W) float in [-1, 1] -> (..., 3, size, size): bicubic, antialiased when shrinking."""
    if image.shape[-2:] == (size, size):
        return image
    batch = image.reshape(-1, *image.shape[-3:]).float()
    out = F.interpolate(batch, size=(size, size), mode="bicubic", align_corners=False,
                        antialias=size < max(image.shape[-2:]))
    return out.clamp(-1, 1).reshape(*image.shape[:-2], size, size)


def band_width(output_size: int, model_size: int) -> int:
    """Blend band in pixels: twice the upsampling factor (the blur of the resized fill), at least 2 px,
    at most 4 % of the side."""
    return max(1, min(math.floor(MAX_BAND_FRACTION * output_size), max(2, round(2 * output_size / model_size))))


@lru_cache(maxsize=4)
def _geometry(size: int, crop_ratio: float, width: int):
    """Tensors of the gap at `size`: distance to the known squares, band mask, mirror indices."""
    per_square = torch.from_numpy(distance_to_known(size, crop_ratio, per_square=True))
    distance = per_square.min(dim=0).values
    band = ((distance > 0) & (distance <= width)).float()[None]
    nearest = (per_square[0] <= per_square[1]).float()
    square_bands = torch.stack([band[0] * nearest, band[0] * (1 - nearest)])[:, None]  # the band split by square
    rows, cols = (torch.from_numpy(a) for a in mirror_into_known(size, crop_ratio))
    return distance[None], band, rows, cols, square_bands


def _mirrored(known: torch.Tensor, rows, cols) -> torch.Tensor:
    """Each known square continued into the hole by reflection across its edges."""
    return known[..., rows.to(known.device), cols.to(known.device)]


def blend_none(out, up, known, crop_ratio, width):
    return out


def blend_feather(out, up, known, crop_ratio, width):
    """Cross-fade from the mirrored square (weight 1 at the border) to the fill (0 at the band's far edge)."""
    distance, band, rows, cols, _ = (t.to(out.device) for t in _geometry(out.shape[-1], crop_ratio, width))
    alpha = ((width + 0.5 - distance) / width).clamp(0, 1) * band
    return out + alpha * (_mirrored(known, rows, cols) - up)


def blend_poisson(out, up, known, crop_ratio, width):
    """The fill keeps its gradients; the difference photo - fill at the border is spread over the band as a
    harmonic function that falls to 0 at the band's far edge (Laplace's equation, models/harmonic.py)."""
    size = out.shape[-1]
    distance, _, _, _, square_bands = (t.to(out.device) for t in _geometry(size, crop_ratio, width))
    difference = (known - up) * (distance == 0).float()  # Dirichlet values: on the squares; 0 beyond the band
    out = out.clone()
    for (top, left, side), band in zip(known_squares(size, crop_ratio), square_bands):
        # One solve per square, on its corner of the image (a fraction of the pixels).
        rows = slice(max(0, top - width - 1), min(size, top + side + width + 1))
        cols = slice(max(0, left - width - 1), min(size, left + side + width + 1))
        region = band[..., rows, cols].expand(out.shape[0], 1, -1, -1)
        correction = harmonic_fill(difference[..., rows, cols], region, tol=1e-4)
        out[..., rows, cols] += region * correction
    return out


def blend_laplacian(out, up, known, crop_ratio, width):
    """Multi-band blend of the mirrored square and the fill, the seam in the middle of the band: low
    frequencies cross over a wide zone, high ones over a narrow one; only the band is changed."""
    distance, band, rows, cols, _ = (t.to(out.device) for t in _geometry(out.shape[-1], crop_ratio, width))
    levels = max(1, int(math.log2(max(width, 2) / 2)) + 1)
    weight = (distance <= width / 2).float()[None].expand(out.shape[0], 1, -1, -1)  # 1: take the mirror
    a, b = _mirrored(known, rows, cols), up
    pyramids = []
    for _ in range(levels):
        small = [F.avg_pool2d(x, 2, ceil_mode=True) for x in (a, b, weight)]
        pyramids.append((a - _up(small[0], a), b - _up(small[1], b), weight))
        a, b, weight = small
    blended = weight * a + (1 - weight) * b
    for detail_a, detail_b, w in reversed(pyramids):
        blended = _up(blended, detail_a) + w * detail_a + (1 - w) * detail_b
    return out + band * (blended.clamp(-1, 1) - out)


def _up(x, like):
    return F.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=False)


BLENDS = {"none": blend_none, "feather": blend_feather, "laplacian": blend_laplacian, "poisson": blend_poisson}


@torch.no_grad()
def fill_at_resolution(fill, masked_small: torch.Tensor, mask_small: torch.Tensor, known: torch.Tensor,
                       crop_ratio: float, blend: str = DEFAULT_BLEND) -> torch.Tensor:
    """The model's fill at S, put into N x N images whose known squares come from `known`.

    masked_small (B, 3, S, S), mask_small (B, 1, S, S): the model's input. known (B, 3, N, N) in [-1, 1]:
    the images whose two known squares (gap geometry at N) the result keeps exactly; the rest of
    `known` is not read. Returns (B, 3, N, N). With N == S it is the model's own output.
    """
    filled = fill(masked_small, mask_small).float()
    size = known.shape[-1]
    if size == filled.shape[-1]:
        return filled
    up = resize(filled, size)
    mask = gap_mask(size, crop_ratio).to(known)
    out = mask * up + (1 - mask) * known
    width = band_width(size, filled.shape[-1])
    return BLENDS[blend](out, up, known.float(), crop_ratio, width).clamp(-1, 1) * mask + (1 - mask) * known


def model_input(image: torch.Tensor, model_size: int, crop_ratio: float, quantize=None):
    """(masked, mask) at the model's size from full-resolution images (B, 3, N, N): resized, then masked."""
    small = resize(image, model_size)
    if quantize is not None:
        small = quantize(small)
    return masked_input(small, crop_ratio)

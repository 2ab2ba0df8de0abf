"""Full-resolution fills: the model fills at its own size, the photos keep theirs.

A model works at S x S (128 for the shipped GAN); photos are larger. `fill_at_resolution` makes an
N x N result for any N:

  1. the model fills the gap at S (its usual input: the photos resized to S);
  2. the fill is resized to N and used in the hole (upsampled: its finest band as grey, `grey_fine_detail`);
  3. the two known squares (data/masks.py geometry at N) are pasted from the N x N photos, pixel-exact;
  4. a narrow band of the hole along the squares' border (`band_width`, at most 4 % of N) is blended so
     that the sharp photo and the softer upsampled fill meet without a step.

Blends (all touch only the band, never the known squares): "poisson" (the default: the fill plus the
harmonic correction that makes it continuous with the photo at the border, Perez et al. 2003),
"laplacian" (multi-band blend of the square mirrored into the band and the fill, Burt & Adelson 1983:
low frequencies cross over the whole band, fine detail over a few pixels), "feather" (linear cross-fade
of the mirrored square and the fill) and "none" (plain paste).

Why "poisson": on benchmarks/bench_blend.py (band PSNR against the photo and the seam step at the squares'
border; figures and commands in docs/fullres.md) it has the best band PSNR and the seam closest to the photo's;
"feather" and "laplacian" are smoother than the photo at the border (a faded mirror image shows). Against a
texture-free fill "laplacian" won: the photo's texture stopped at a visible line; the textured fill continues it.
"""
import math
from functools import lru_cache

import torch
import torch.nn.functional as F

from data.masks import distance_to_known, gap_mask, keep_known, known_squares, masked_input, mirror_into_known
from models.filters import separable_gaussian
from models.harmonic import harmonic_fill

MAX_BAND_FRACTION = 0.04  # the band never exceeds 4 % of the side
DEFAULT_BLEND = "poisson"
GREY_DETAIL_SIGMA = 1.0  # px at the model's size: the band that an upsampled fill keeps only as grey


def resize(image: torch.Tensor, size: int, antialias: bool = None) -> torch.Tensor:
    """(..., 3, H, W) float in [-1, 1] -> (..., 3, size, size): bicubic, clamped to [-1, 1]; antialiased when
    shrinking, or as `antialias` says (torch's antialiased kernel also differs when enlarging: a = -0.5, not
    -0.75)."""
    if image.shape[-2:] == (size, size):
        return image
    batch = image.reshape(-1, *image.shape[-3:]).float()
    antialias = size < max(image.shape[-2:]) if antialias is None else antialias
    out = F.interpolate(batch, size=(size, size), mode="bicubic", align_corners=False, antialias=antialias)
    return out.clamp(-1, 1).reshape(*image.shape[:-2], size, size)


def band_width(output_size: int, model_size: int) -> int:
    """Blend band in pixels: twice the upsampling factor (the blur of the resized fill), at least 2 px,
    at most 4 % of the side."""
    return max(1, min(math.floor(MAX_BAND_FRACTION * output_size), max(2, round(2 * output_size / model_size))))


@lru_cache(maxsize=4)
def _regions(size: int, crop_ratio: float, width: int) -> tuple:
    """Per known square, its neighbourhood (the square, the band and a margin for the blends' filters):
    (rows slice, cols slice, distance to the known pixels, this square's band pixels (1, h, w), mirror
    row and column indices into the whole image). Blending there instead of over the whole image costs
    a fraction of the pixels, which matters for photos of several megapixels."""
    margin, align = 2 * width + 8, 2 ** _levels(width)  # aligned: the pyramid's grid is the whole image's
    regions = []
    for index, (top, left, side) in enumerate(known_squares(size, crop_ratio)):
        window = (slice(max(0, top - width - margin) // align * align, min(size, top + side + width + margin)),
                  slice(max(0, left - width - margin) // align * align, min(size, left + side + width + margin)))
        per_square = torch.from_numpy(distance_to_known(size, crop_ratio, per_square=True, window=window))
        distance = per_square.min(dim=0).values
        mine = per_square[index] <= per_square[1 - index] if index == 0 else per_square[1] < per_square[0]
        band = ((distance > 0) & (distance <= width) & mine).float()[None]
        rows, cols = (torch.from_numpy(a) for a in mirror_into_known(size, crop_ratio, window=window))
        regions.append((*window, distance[None], band, rows, cols))
    return tuple(regions)


def _blend_regions(out, up, known, crop_ratio, width, blend_one):
    """Apply blend_one(out, up, known, distance, band, mirror) on each square's neighbourhood; only the
    band pixels change."""
    out = out.clone()
    for rows, cols, distance, band, mirror_rows, mirror_cols in _regions(out.shape[-1], crop_ratio, width):
        device = out.device
        distance, band = distance.to(device), band.to(device)
        mirror = known[..., mirror_rows.to(device), mirror_cols.to(device)]
        region = out[..., rows, cols]
        out[..., rows, cols] = region + band * (blend_one(region, up[..., rows, cols], known[..., rows, cols],
                                                          distance, band, mirror, width) - region)
    return out


def blend_none(out, up, known, crop_ratio, width):
    return out


def blend_feather(out, up, known, crop_ratio, width):
    """Cross-fade from the mirrored square (weight 1 at the border) to the fill (0 at the band's far edge)."""
    def one(out, up, known, distance, band, mirror, width):
        alpha = ((width + 0.5 - distance) / width).clamp(0, 1)
        return alpha * mirror + (1 - alpha) * up
    return _blend_regions(out, up, known, crop_ratio, width, one)


def blend_poisson(out, up, known, crop_ratio, width):
    """The fill keeps its gradients; the difference photo - fill at the border is spread over the band as a
    harmonic function that falls to 0 at the band's far edge (Laplace's equation, models/harmonic.py)."""
    def one(out, up, known, distance, band, mirror, width):
        difference = (known - up) * (distance == 0).float()  # Dirichlet values: the square; 0 beyond the band
        return up + harmonic_fill(difference, band.expand(out.shape[0], 1, -1, -1), tol=1e-4)
    return _blend_regions(out, up, known, crop_ratio, width, one)


def blend_laplacian(out, up, known, crop_ratio, width):
    """Multi-band blend of the mirrored square and the fill, the seam in the middle of the band: low
    frequencies cross over a wide zone, high ones over a narrow one; only the band is changed."""
    levels = _levels(width)

    def one(out, up, known, distance, band, mirror, width):
        weight = (distance <= width / 2).float().expand(out.shape[0], 1, -1, -1)  # 1: take the mirror
        # Pad to a multiple of 2^levels, so that every level halves exactly and the upsampled levels align.
        height, breadth = out.shape[-2:]
        step = 2 ** levels
        pad = (0, -breadth % step, 0, -height % step)
        a, b, weight = (F.pad(x, pad, mode="replicate") for x in (mirror, up, weight))
        pyramids = []
        for _ in range(levels):
            small = [F.avg_pool2d(x, 2) for x in (a, b, weight)]
            pyramids.append((a - _up(small[0], a), b - _up(small[1], b), weight))
            a, b, weight = small
        blended = weight * a + (1 - weight) * b
        for detail_a, detail_b, w in reversed(pyramids):
            blended = _up(blended, detail_a) + w * detail_a + (1 - w) * detail_b
        return blended[..., :height, :breadth].clamp(-1, 1)
    return _blend_regions(out, up, known, crop_ratio, width, one)


def _levels(width: int) -> int:
    """Pyramid levels of the Laplacian blend: the coarsest spans about half the band."""
    return max(1, int(math.log2(max(width, 2) / 2)) + 1)


def _up(x, like):
    return F.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=False)


BLENDS = {"none": blend_none, "feather": blend_feather, "laplacian": blend_laplacian, "poisson": blend_poisson}


def grey_fine_detail(x: torch.Tensor, sigma: float = GREY_DETAIL_SIGMA) -> torch.Tensor:
    """(B, 3, S, S) -> the same with its finest band (x - G(sigma) x) replaced by that band's grey (channel mean).

    Why: a fill's pixel-scale grain sits near its Nyquist frequency, and bicubic upsampling turns its colour part
    into regular diagonal magenta-green stripes (the shipped GAN at --output_size 320 or 512). Photos carry their
    fine detail as brightness (their chroma share is low: docs/realism_metrics.md), so the upsampled fill keeps the
    grain's brightness and drops its colour (docs/fullres.md has the figures)."""
    low = separable_gaussian(x, sigma, radius_sigmas=3, padding="reflect")  # reflect keeps a grain alternating
    return low + (x - low).mean(dim=1, keepdim=True)


@torch.no_grad()
def fill_at_resolution(fill, masked_small: torch.Tensor, mask_small: torch.Tensor, known: torch.Tensor,
                       crop_ratio: float, blend: str = DEFAULT_BLEND) -> torch.Tensor:
    """The model's fill at S, put into N x N images whose known squares come from `known`.

    masked_small (B, 3, S, S), mask_small (B, 1, S, S): the model's input. known (B, 3, N, N) in [-1, 1]:
    the images whose two known squares (gap geometry at N) the result keeps exactly; the rest of
    `known` is not read. Returns (B, 3, N, N). With N == S it is the model's own output; with N > S the fill's
    finest band goes in as grey (`grey_fine_detail`).
    """
    filled = fill(masked_small, mask_small).float()
    size = known.shape[-1]
    if size == filled.shape[-1]:
        return filled
    up = resize(grey_fine_detail(filled) if size > filled.shape[-1] else filled, size)
    mask = gap_mask(size, crop_ratio).to(known)
    out = keep_known(known, mask, up)
    width = band_width(size, filled.shape[-1])
    return keep_known(known, mask, BLENDS[blend](out, up, known.float(), crop_ratio, width).clamp(-1, 1))


def model_input(image: torch.Tensor, model_size: int, crop_ratio: float, quantize=None):
    """(masked, mask) at the model's size from full-resolution images (B, 3, N, N): resized, then masked."""
    small = resize(image, model_size)
    if quantize is not None:
        small = quantize(small)
    return masked_input(small, crop_ratio)

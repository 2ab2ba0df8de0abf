"""Exemplar texture: the known squares' own fine detail, copied into the hole and placed by the generator.

Why: a generator that draws its detail from image-independent noise lays the same kind of grain (or mottling)
over every scene, and the patch statistics of a fill stay far from a photograph's (docs/realistic_fills.md). The
exemplar-based fill (OpenCV shift-map) has a photograph's texture because it copies it from the photo, but
its layout is wrong and its blocks show seams. This layer combines the two, as contextual attention (Yu et al.
2018) and patch-based texture synthesis (Efros & Freeman 2001, "Image Quilting") do each in their own way:

  1. band-pass the known pixels of each source region (the known pixels of the bottom and of the top half of
     the image: the bottom-left and the top-right square of the gap task) with Gaussian blurs computed over
     those pixels only (normalised convolution, so the hole's values never leak in):
     bands x - G(s1) x and G(s1) x - G(s2) x;
  2. lay PATCH x PATCH patches of each band over an S x S canvas, on a grid of stride PATCH - OVERLAP with sine
     cross-fade windows (squared weights sum to 1, so the texture keeps its variance where two patches overlap
     and there are no block edges); the grid has a random offset in training; each cell's patch is drawn at
     random, or by how well its mean colour matches the generator's own smooth fill there (`colour_scores`);
  3. multiply each canvas by a per-pixel gate that a 3x3 convolution predicts from the decoder's last
     features (the layout: where the scene would have this source's detail) and add the sum to the
     generator's residual.

The gate convolution starts at zero, so adding the layer to a trained generator changes nothing. The canvases
carry no gradient (they are the input's known pixels); only the gates learn. Randomness: in train mode torch's
global RNG (checkpoints store it: resume stays exact); in eval mode uniforms from a generator seeded with 0,
mapped onto each image's own valid source positions, so a fill is reproducible and does not depend on its
batch neighbours.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from models.filters import separable_gaussian
from models.harmonic import harmonic_fill

PATCH = 16  # px at the model's resolution: a source patch (the gap task's squares are 51 px at 128²)
OVERLAP = 4  # px of cross-fade between neighbouring patches
SIGMAS = (2.0, 5.0)  # the bands' edges: fine = x - G(2), mid = G(2) - G(5)
COARSE_SIGMAS = (5.0, 10.0)  # the optional coarse band G(5) - G(10), laid at half resolution (`coarse_band`)
SOURCES = 2  # the known pixels of the bottom half, of the top half
RMS_FLOOR = 0.5  # normalised patches: a patch smoother than this fraction of its source's detail is not raised further


def masked_blur(x: torch.Tensor, weight: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian blur of x (B, C, H, W) over the pixels where weight (B, 1, H, W) is 1 (normalised convolution,
    radius 3 sigma, zero padding): G(x w) / G(w); 0 where no such pixel is near."""
    def blur(t):
        return separable_gaussian(t, sigma, radius_sigmas=3, padding="constant")

    coverage = blur(weight)
    return blur(x * weight) / coverage.clamp_min(1e-6) * (coverage > 1e-3)


def source_regions(mask: torch.Tensor) -> torch.Tensor:
    """mask (B, 1, S, S), 1 = hole -> (B, SOURCES, S, S): 1 on the known pixels of the bottom / top half."""
    known = 1.0 - mask.float()
    rows = torch.arange(mask.shape[-2], device=mask.device).view(1, 1, -1, 1)
    bottom = (rows >= mask.shape[-2] // 2).to(known)
    return torch.cat([known * bottom, known * (1.0 - bottom)], dim=1)


def bands(image: torch.Tensor, region: torch.Tensor) -> torch.Tensor:
    """image (B, 3, S, S), region (B, 1, S, S) -> (B, 3 len(SIGMAS), S, S): its band-passed known pixels
    (0 outside the region)."""
    levels = [image.float()] + [masked_blur(image.float(), region, s) for s in SIGMAS]
    return torch.cat([levels[i] - levels[i + 1] for i in range(len(SIGMAS))], dim=1) * region


def coarse_band(image: torch.Tensor, region: torch.Tensor) -> torch.Tensor:
    """image (B, 3, S, S), region (B, 1, S, S) -> (B, 3, S, S): the known pixels' coarse band G(5) x - G(10) x
    (COARSE_SIGMAS; 0 outside the region): structure of about 5-20 px, which the two finer bands lack (waves,
    leaves, stones: the 32-px level of the patch SWD)."""
    low, high = COARSE_SIGMAS
    return (masked_blur(image.float(), region, low) - masked_blur(image.float(), region, high)) * region


def known_band_energy(masked: torch.Tensor, known: torch.Tensor, coarse: bool = False) -> torch.Tensor:
    """masked (B, 3, S, S), known (B, 1, S, S) -> (B, len(SIGMAS) (+1 with coarse), S, S): each band's squared
    amplitude (mean over RGB) at every known pixel, 0 elsewhere."""
    detail = bands(masked, known)
    if coarse:
        detail = torch.cat([detail, coarse_band(masked, known)], dim=1)
    return detail.pow(2).unflatten(1, (-1, 3)).mean(dim=2)


def known_detail_prior(masked: torch.Tensor, mask: torch.Tensor, sigma: float = 4.0, coarse: bool = False,
                       relative: bool = False) -> torch.Tensor:
    """masked (B, 3, S, S), mask (B, 1, S, S) -> (B, len(SIGMAS) (+1 with coarse), S, S): each band's local RMS
    detail over the known pixels (a masked blur of its square, sigma px), carried into the hole as a harmonic
    (Laplace) interpolation.

    A guess of how much detail of each scale the hole has where, from nothing but the squares: a hole region near
    a textured square's edge is likely textured. On val it predicts where the truth has detail a little less well
    than the shipped generator's own fill, and adds to it (docs/realistic_fills.md, benchmarks/probe_detail_placement.py).
    relative: divided by the band's RMS over all known pixels (1 = as detailed as the squares on average; clamped
    to [0, 4]), the scale-free form the exemplar gates take as input. No gradient."""
    with torch.no_grad():
        known = 1.0 - mask.float()
        energy = known_band_energy(masked, known, coarse)  # (B, bands, S, S)
        local = masked_blur(energy, known, sigma).clamp_min(0).sqrt() * known
        prior = harmonic_fill(local, mask).clamp_min(0)
        if relative:
            mean = energy.sum(dim=(2, 3)) / known.sum(dim=(2, 3)).clamp_min(1.0)  # (B, bands)
            prior = (prior / mean.sqrt().clamp_min(1e-4)[:, :, None, None]).clamp_max(4.0)
        return prior


def sine_window(size: int, overlap: int) -> torch.Tensor:
    """1-D window: 1 in the middle, sin/cos ramps over `overlap` px at each end, so that the squares of two
    windows overlapping by `overlap` px sum to 1."""
    window = torch.ones(size)
    if overlap:
        ramp = torch.sin(0.5 * math.pi * (torch.arange(overlap, dtype=torch.float32) + 0.5) / overlap)
        window[:overlap], window[-overlap:] = ramp, ramp.flip(0)
    return window


def grid_cells(size: int) -> int:
    """Grid cells per side so that the canvas's fully cross-faded part, [OVERLAP, cells * stride), holds
    `size` px at any offset in [0, stride)."""
    stride = PATCH - OVERLAP
    return math.ceil((size + OVERLAP + stride - 1) / stride)


def valid_corners(region: torch.Tensor) -> torch.Tensor:
    """(B, 1, S, S) region -> (B, (S - PATCH + 1)^2) bool: the top-left corners of the PATCH x PATCH windows
    that lie wholly inside it (the region eroded by the patch: min-pool = -max-pool(-x))."""
    return (-F.max_pool2d(-region.float(), PATCH, stride=1)).flatten(1) > 0.5


def random_corners(valid: torch.Tensor, uniforms: torch.Tensor) -> torch.Tensor:
    """valid (B, K) -> (B, N) corner indices: uniforms (N,) in [0, 1), the same for every image, mapped onto
    each image's own valid corners (0 for an image without one)."""
    corners = torch.zeros(valid.shape[0], uniforms.numel(), dtype=torch.long, device=valid.device)
    for i in range(valid.shape[0]):
        positions = torch.nonzero(valid[i]).squeeze(1)  # (P,) flat corner indices
        if positions.numel():
            picks = (uniforms.to(valid.device) * positions.numel()).long().clamp_max(positions.numel() - 1)
            corners[i] = positions[picks]
    return corners


def guided_corners(valid: torch.Tensor, scores: torch.Tensor, uniforms: torch.Tensor) -> torch.Tensor:
    """valid (B, K), scores (B, N, K) log-weights, uniforms (N, K) in (0, 1) -> (B, N): for every cell, one
    valid corner drawn with probability proportional to exp(score) (the Gumbel-max trick: argmax of score +
    Gumbel noise), so a good match is likely but not always the same patch."""
    gumbel = -torch.log(-torch.log(uniforms.to(scores).clamp(1e-12, 1 - 1e-7)))
    return (scores + gumbel).masked_fill(~valid[:, None, :], float("-inf")).argmax(dim=2)


def cell_centres(size: int, offset: tuple) -> tuple:
    """Row and column (clamped into the image) of each grid cell's centre, for a canvas at `offset`."""
    stride = PATCH - OVERLAP
    starts = torch.arange(grid_cells(size)) * stride - OVERLAP
    return tuple((starts - d + PATCH // 2).clamp(0, size - 1) for d in offset)


def band_rms(band: torch.Tensor, region: torch.Tensor) -> torch.Tensor:
    """band (B, C, S, S), C = 3 per band, region (B, 1, S, S) -> (B, C // 3): each band's RMS over the region."""
    b, c = band.shape[:2]
    energy = (band.float() ** 2 * region).view(b, c // 3, 3, -1).sum(dim=(2, 3))
    return (energy / (3 * region.flatten(1).sum(1, keepdim=True)).clamp_min(1.0)).sqrt()


def normalise_patches(patches: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """patches (B, C, N, P, P), C = 3 per band, reference (B, C // 3) -> each patch's bands rescaled to the
    reference RMS (a patch below RMS_FLOOR x reference is raised by 1 / RMS_FLOOR only, so sky stays smooth).

    Why: with raw patches the canvas's local detail is as random as the draw (a patch of rock beside one of sky),
    so the gate cannot decide how much detail goes where; on normalised patches the gate sets the amount."""
    b, c, n = patches.shape[:3]
    grouped = patches.view(b, c // 3, 3, n, -1)
    rms = grouped.pow(2).mean(dim=(2, 4), keepdim=True).sqrt()  # (B, bands, 1, N, 1)
    reference = reference.view(b, c // 3, 1, 1, 1).to(patches)
    gain = reference / torch.maximum(rms, RMS_FLOOR * reference).clamp_min(1e-6)
    return (grouped * gain).view_as(patches)


def assemble(band: torch.Tensor, corners: torch.Tensor, offset: tuple, reference: torch.Tensor = None) -> torch.Tensor:
    """band (B, C, S, S), corners (B, n * n) flat top-left corners on the (S - PATCH + 1)^2 grid -> canvas
    (B, C, S, S): cell j holds the band's PATCH x PATCH patch at corners[:, j], sine cross-faded with its
    neighbours; the grid starts at `offset` (dy, dx) in [0, stride). reference (B, C // 3): normalise each
    patch's bands to this RMS (`normalise_patches`)."""
    b, c, s, _ = band.shape
    stride, n, side = PATCH - OVERLAP, grid_cells(s), s - PATCH + 1
    top, left = corners // side, corners % side  # (B, N)
    offsets = torch.arange(PATCH, device=band.device)
    pixels = ((top[:, :, None, None] + offsets[:, None]) * s + left[:, :, None, None] + offsets).flatten(1)
    patches = band.flatten(2).gather(2, pixels[:, None].expand(-1, c, -1)).view(b, c, n * n, PATCH, PATCH)
    if reference is not None:
        patches = normalise_patches(patches, reference)
    window = sine_window(PATCH, OVERLAP).to(band)
    patches = patches * (window[:, None] * window)  # separable 2-D window
    size = n * stride + OVERLAP
    canvas = F.fold(patches.permute(0, 1, 3, 4, 2).reshape(b, c * PATCH * PATCH, n * n), (size, size),
                    PATCH, stride=stride)
    # Start at `offset` inside the first cell's cross-fade-free part: the canvas is fully covered there.
    dy, dx = offset
    return canvas[:, :, OVERLAP + dy:OVERLAP + dy + s, OVERLAP + dx:OVERLAP + dx + s]


def colour_scores(image: torch.Tensor, guide: torch.Tensor, temperature: float, offset: tuple) -> torch.Tensor:
    """(B, N, K) log-weights for drawing each cell's patch by colour ("texture by numbers", Hertzmann et al. 2001,
    "Image Analogies"): -d² / temperature², d the RMS difference between a candidate window's mean colour in
    `image` (B, 3, S, S) and the mean colour of `guide` (B, 3, S, S: the generator's own smooth fill) over the
    cell, for the grid at `offset`. Sky cells get patches of sky, rock cells patches of rock."""
    s = image.shape[-1]
    source = F.avg_pool2d(image, PATCH, stride=1).flatten(2)  # (B, 3, K): each window's mean colour
    cells = F.avg_pool2d(guide, PATCH, stride=1, padding=PATCH // 2, count_include_pad=False)  # centred means
    rows, cols = cell_centres(s, offset)
    cells = cells[:, :, rows.to(guide.device)][:, :, :, cols.to(guide.device)].flatten(2)  # (B, 3, N)
    # (B, N, K) mean squared colour difference, expanded so that no (B, 3, N, K) tensor is built.
    distance = ((cells ** 2).sum(1)[:, :, None] + (source ** 2).sum(1)[:, None, :]
                - 2 * torch.einsum("bcn,bck->bnk", cells, source)).clamp_min(0) / 3
    return -distance / temperature ** 2


def pattern_scores(image: torch.Tensor, guide: torch.Tensor, temperature: float, offset: tuple,
                   cells: int = 4) -> torch.Tensor:
    """(B, N, K) log-weights like `colour_scores`, but d is the RMS difference of the windows' cells x cells grids
    of mean colours (each PATCH / cells px square): a candidate patch must match the guide's coarse pattern over
    the cell (a horizon, a trunk's edge), not only its mean colour (on val no better than mean colour for the placed
    texture of docs/realistic_fills.md, run 21)."""
    s = image.shape[-1]
    step, side = PATCH // cells, s - PATCH + 1

    def descriptors(x):  # (B, 3 cells², K): every window's grid of step x step means
        return F.unfold(F.avg_pool2d(x, step, stride=1), cells, dilation=step)
    source = descriptors(image)
    rows, cols = ((c - PATCH // 2).clamp(0, s - PATCH).to(guide.device) for c in cell_centres(s, offset))
    grid = descriptors(guide).unflatten(2, (side, side))
    cells_d = grid[:, :, rows][:, :, :, cols].flatten(2)  # (B, D, N): the guide's windows over the cells
    distance = ((cells_d ** 2).sum(1)[:, :, None] + (source ** 2).sum(1)[:, None, :]
                - 2 * torch.einsum("bdn,bdk->bnk", cells_d, source)).clamp_min(0) / source.shape[1]
    return -distance / temperature ** 2


def peakiness(band: torch.Tensor, cells: int = 4) -> torch.Tensor:
    """band (B, C, S, S) -> (B, K) for every PATCH x PATCH window (K = (S - PATCH + 1)^2): the largest of its
    cells x cells sub-squares' mean band energy over the window's mean, in [1, cells²]. Low for a texture (grass,
    foliage, rock grain; ≈ 1.4 for white noise), higher where one edge or object carries the window's detail (a
    dome's outline, a mast, an eye: 4 for one straight line through 4 of the 16 sub-squares)."""
    step = PATCH // cells
    energy = F.avg_pool2d(band.float().pow(2).sum(1, keepdim=True), step, stride=1)  # (B, 1, S - step + 1, .)
    sub = F.unfold(energy, cells, dilation=step)  # (B, cells², K)
    return sub.amax(dim=1) / sub.mean(dim=1).clamp_min(1e-8)


def coherence(band: torch.Tensor) -> torch.Tensor:
    """band (B, C, S, S) -> (B, K) for every PATCH x PATCH window: the coherence of its structure tensor (the grey
    band's gradients' outer product averaged over the window), ((Jxx - Jyy)² + 4 Jxy²) / (Jxx + Jyy)², in [0, 1]:
    ≈ 0 for an isotropic texture (foliage, gravel, noise), 1 for one orientation (a straight edge, stripes,
    railings), the pieces that repeat as streaks and ripples when copied over a hole."""
    grey = band.float().unflatten(1, (-1, 3)).sum(dim=(1, 2))[:, None]  # (B, 1, S, S): all bands, all channels
    gx = F.pad(grey[..., :, 1:] - grey[..., :, :-1], (0, 1))
    gy = F.pad(grey[..., 1:, :] - grey[..., :-1, :], (0, 0, 0, 1))
    jxx, jyy, jxy = (F.avg_pool2d(t, PATCH, stride=1).flatten(1) for t in (gx * gx, gy * gy, gx * gy))
    return ((jxx - jyy) ** 2 + 4 * jxy ** 2) / (jxx + jyy).pow(2).clamp_min(1e-12)


def patch_canvas(band: torch.Tensor, region: torch.Tensor, uniforms: torch.Tensor, offset: tuple,
                 scores: torch.Tensor = None, normalise: bool = False) -> torch.Tensor:
    """Patches of `band` (B, C, S, S) whose PATCH x PATCH window lies wholly inside `region` (B, 1, S, S),
    cross-faded over a canvas -> (B, C, S, S) (0 for an image without such a window); offset: (dy, dx) in
    [0, stride), where the grid starts.

    Without `scores`, each cell's patch is drawn at random: uniforms (n * n,) in [0, 1), n = grid_cells(S), the
    same for every image (each maps them onto its own valid positions). With scores (B, n * n, K) log-weights
    over the K = (S - PATCH + 1)^2 corners (e.g. `colour_scores`), it is drawn with probability proportional to
    exp(score): uniforms (n * n, K) in (0, 1), the same for every image (`guided_corners`).
    normalise: each patch's bands rescaled to their RMS over the whole region (`normalise_patches`).
    """
    s = band.shape[-1]
    n, side = grid_cells(s), s - PATCH + 1
    shape = (n * n,) if scores is None else (n * n, side * side)
    if tuple(uniforms.shape) != shape:
        raise ValueError(f"patch_canvas: uniforms of shape {shape} needed for a {s}-px canvas "
                         f"({'random' if scores is None else 'scored'} draws), got {tuple(uniforms.shape)}")
    valid = valid_corners(region)
    corners = random_corners(valid, uniforms) if scores is None else guided_corners(valid, scores, uniforms)
    reference = band_rms(band, region) if normalise else None
    return assemble(band, corners, offset, reference) * valid.any(dim=1).view(-1, 1, 1, 1)


def flatten_detail(band: torch.Tensor, region: torch.Tensor, floor: float, sigma: float = 4.0) -> torch.Tensor:
    """band (B, C, S, S), region (B, 1, S, S) -> the band with its local RMS (all channels, a masked blur of sigma
    px) brought to its RMS over the region, raising by at most 1 / floor: one strong edge or object then weighs
    in a random-phase texture's spectrum no more than the region's surfaces."""
    energy = band.float().pow(2).mean(dim=1, keepdim=True)
    local = masked_blur(energy, region, sigma).clamp_min(0).sqrt()
    reference = ((energy * region).sum(dim=(2, 3), keepdim=True)
                 / region.sum(dim=(2, 3), keepdim=True).clamp_min(1.0)).sqrt()
    return band * (reference / torch.maximum(local, floor * reference).clamp_min(1e-6)) * region


def spot_kernel(band: torch.Tensor, region: torch.Tensor) -> torch.Tensor:
    """band (B, C, S, S), region (B, 1, S, S) -> (B, C, S, S): the band's known pixels minus their mean, divided by
    the square root of their count (0 outside the region): the kernel of `spectral_canvas`."""
    count = region.flatten(1).sum(1).clamp_min(1.0).view(-1, 1, 1, 1)
    mean = (band * region).sum(dim=(2, 3), keepdim=True) / count
    return (band - mean) * region / count.sqrt()


def spectral_canvas(band: torch.Tensor, region: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """band (B, C, S, S), region (B, 1, S, S), noise (S, S) white, unit variance -> (B, C, S, S): the band's
    asymptotic discrete spot noise (Galerne, Gousseau & Morel 2011, "Random Phase Textures"): the noise convolved
    (periodically, by FFT) with the band's zero-mean known pixels / sqrt(their count) (`spot_kernel`).

    A stationary texture with the band's autocorrelation and colour covariance at every pixel, and none of its
    arrangement: the squares' surfaces (grain, foliage, ripples) without their objects' fragments and edges, which
    copied patches carry (run 21's collage, docs/realistic_fills.md). Its per-pixel RMS is the band's RMS over the region
    (as `normalise_patches` sets it). One noise for every channel and band keeps their correlations."""
    return spot_noise(spot_kernel(band, region), noise)


def spot_noise(kernel: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """kernel (B, C, S, S), noise (S, S) -> (B, C, S, S): the noise convolved with each kernel, periodically (FFT)."""
    s = kernel.shape[-1]
    spectrum = torch.fft.rfft2(kernel.float()) * torch.fft.rfft2(noise.float().to(kernel.device))
    return torch.fft.irfft2(spectrum, s=(s, s))


def match_marginals(canvas: torch.Tensor, band: torch.Tensor, region: torch.Tensor) -> torch.Tensor:
    """canvas, band (B, C, S, S), region (B, 1, S, S) -> the canvas with each channel's values replaced by the
    band's values over the region at the same quantile (one pass of Heeger & Bergen 1995's histogram matching).

    A random-phase texture is Gaussian and sign-symmetric: bright blades on dark ground come out as as many dark
    blades on bright ground. The band's own marginal restores its sparsity and skew."""
    out = torch.empty_like(canvas)
    for i in range(canvas.shape[0]):
        inside = region[i, 0].flatten() > 0.5
        if not inside.any():
            out[i] = canvas[i]
            continue
        values = band[i].flatten(1)[:, inside].sort(dim=1).values  # (C, n) the band's quantiles
        flat = canvas[i].flatten(1)
        ranks = flat.argsort(dim=1).argsort(dim=1).float()  # (C, N)
        index = ((ranks + 0.5) / flat.shape[1] * values.shape[1]).long().clamp_max(values.shape[1] - 1)
        out[i] = values.gather(1, index).view_as(canvas[i])
    return out


def window_regions(region: torch.Tensor, window: int, stride: int) -> torch.Tensor:
    """region (B, 1, S, S) -> (B, W, S, S): the region cut into window x window squares on a grid of `stride` over
    its bounding box (the same grid for every image: the squares of the gap task share their place), each the
    region's pixels inside one square; squares with under half a window of region pixels are dropped for all."""
    s = region.shape[-1]
    occupied = region.flatten(0, 1).amax(0) > 0.5  # (S, S): where any image has region pixels
    if not occupied.any():
        raise ValueError("window_regions: the region is empty (no known pixels to take a texture from)")
    rows, cols = occupied.any(1).nonzero().squeeze(1), occupied.any(0).nonzero().squeeze(1)

    def starts(first, last):
        span = int(last - first + 1)
        steps = max(0, math.ceil((span - window) / stride))
        return [int(first) + min(i * stride, max(0, span - window)) for i in range(steps + 1)]
    squares = []
    for top in starts(rows[0], rows[-1]):
        for left in starts(cols[0], cols[-1]):
            square = torch.zeros(s, s, device=region.device)
            square[top:top + window, left:left + window] = 1
            squares.append(square)
    squares = torch.stack(squares)[None] * region  # (B, W, S, S)
    keep = squares.flatten(2).sum(2).amin(0) >= window * window / 2
    return squares[:, keep]


def local_spectral_canvas(band: torch.Tensor, region: torch.Tensor, noise: torch.Tensor, image: torch.Tensor,
                          guide: torch.Tensor, temperature: float, window: int = 24, stride: int = 12) -> torch.Tensor:
    """Like `spectral_canvas`, but the texture at each pixel is the random-phase texture of the region's windows
    (`window_regions`) whose mean colour in `image` (B, 3, S, S) matches `guide` (B, 3, S, S: the layout) there,
    blurred over 4 px: weights softmax over the windows of -d² / temperature², d the RMS colour difference ("texture
    by numbers", as `colour_scores` draws patches). One noise for every window, so that where the weights blend two
    windows the texture changes smoothly. A blend of kernels has less variance than its parts (w'Gw, G the kernels'
    Gram matrix, against sum w_i G_ii); it is scaled back, per band, so the amount is the chosen windows'."""
    windows = window_regions(region, window, stride)  # (B, W, S, S)
    b, w = windows.shape[:2]
    kernels = spot_kernel(band.repeat_interleave(w, 0), windows.flatten(0, 1)[:, None])  # (B W, C, S, S)
    canvases = spot_noise(kernels, noise).unflatten(0, (b, w))  # (B, W, C, S, S)
    grouped = kernels.unflatten(0, (b, w)).unflatten(2, (-1, 3)).flatten(3)  # (B, W, bands, 3 S S)
    gram = torch.einsum("bind,bjnd->bnij", grouped, grouped)  # (B, bands, W, W)
    count = windows.flatten(2).sum(2).clamp_min(1.0)  # (B, W)
    means = torch.einsum("bchw,bkhw->bkc", image.float(), windows) / count[:, :, None]  # (B, W, 3)
    local = masked_blur(guide.float(), torch.ones_like(guide[:, :1]), 4.0)  # (B, 3, S, S)
    distance = (local[:, None] - means[:, :, :, None, None]).pow(2).mean(dim=2)  # (B, W, S, S)
    weights = torch.softmax(-distance / temperature ** 2, dim=1)
    wanted = torch.einsum("bwhx,bnw->bnhx", weights, torch.diagonal(gram, dim1=2, dim2=3))  # (B, bands, S, S)
    blended = torch.einsum("bihx,bnij,bjhx->bnhx", weights, gram, weights)
    scale = (wanted / blended.clamp_min(1e-12)).sqrt()  # (B, bands, S, S)
    canvas = (weights[:, :, None] * canvases).sum(dim=1)  # (B, C, S, S)
    return (canvas.unflatten(1, (-1, 3)) * scale[:, :, None]).flatten(1, 2)


class ExemplarTexture(nn.Module):
    """(masked image (B, 3, S, S), mask (B, 1, S, S), features (B, F, S, S), guide (B, 3, S, S)) -> (B, 3, S, S)
    residual: gated canvases of the known squares' band-passed detail (see the module docstring).

    guide_temperature: 0 lays random patches; > 0 draws each cell's patch by how well its mean colour matches
    the guide's there (`colour_scores`; the guide is the generator's own fill before any texture).
    guide_cells > 1: patches drawn by how well their guide_cells x guide_cells grid of mean colours matches the
    guide's over the cell (`pattern_scores`), not only their mean colour.
    stationary > 0 (guided draws only): log-weights lowered by stationary x log `peakiness` of the candidate
    window, so that textures are copied rather than fragments of the squares' objects; isotropic > 0 likewise by
    isotropic x the window's `coherence` (straight edges, stripes).
    normalise: every patch's bands at their source's RMS detail (`normalise_patches`), so that the gates, not the
    draw, decide how much detail goes where.
    coarse: a third band per source, G(5) - G(10) (`coarse_band`), laid at half resolution (its 16-px patches span
    32 px there, then a bilinear 2x upsampling): cross-faded over 4 px at full resolution, a band this smooth
    would switch patches visibly along the grid.
    prior: the gates also see `known_detail_prior(relative=True)` (one channel per band), the squares' detail
    carried into the hole: a cue to where the scene has detail that the decoder's features give only weakly.
    """

    def __init__(self, feature_channels: int, guide_temperature: float = 0.0, normalise: bool = False,
                 coarse: bool = False, prior: bool = False, guide_cells: int = 1, stationary: float = 0.0,
                 isotropic: float = 0.0):
        super().__init__()
        self.stationary, self.isotropic = stationary, isotropic
        if PATCH % guide_cells:
            raise ValueError(f"guide_cells must divide the patch side {PATCH}, got {guide_cells}")
        self.guide_cells = guide_cells
        self.bands = len(SIGMAS) + coarse
        self.canvases = SOURCES * self.bands  # gate channels: per source, one per band (fine, mid, coarse)
        self.guide_temperature = guide_temperature
        self.normalise = normalise
        self.coarse = coarse
        self.prior = prior
        self.gate = nn.Conv2d(feature_channels + (self.bands if prior else 0), self.canvases, 3, 1, 1)
        nn.init.zeros_(self.gate.weight)  # no-op at the start: it can be added to a trained generator
        nn.init.zeros_(self.gate.bias)

    def draw(self, shape: tuple) -> tuple:
        """(uniforms of `shape` in (0, 1), grid offset) from the global RNG in training, from a generator seeded
        with 0 in eval (the same draw for every image and call)."""
        stride = PATCH - OVERLAP
        if self.training:
            return torch.rand(shape), tuple(torch.randint(stride, (2,)).tolist())
        generator = torch.Generator().manual_seed(0)
        return torch.rand(shape, generator=generator), (0, 0)

    @torch.no_grad()
    def canvas(self, masked: torch.Tensor, mask: torch.Tensor, guide: torch.Tensor = None) -> torch.Tensor:
        """(B, SOURCES * bands * 3, S, S): per source, its bands' canvases (one draw per source and resolution).

        In fp32 and the contiguous layout, outside autocast: a depthwise convolution on a channels-last bf16
        tensor is ~100x slower on the CPU (a 1-D blur took minutes per step).
        """
        with torch.autocast(masked.device.type, enabled=False):
            guide = None if guide is None else guide.float().contiguous()
            return self._canvas(masked.float().contiguous(), mask.float().contiguous(), guide)

    def _canvas(self, masked: torch.Tensor, mask: torch.Tensor, guide: torch.Tensor = None) -> torch.Tensor:
        guide = guide if self.guide_temperature > 0 else None
        regions = source_regions(mask)
        out = []
        for k in range(SOURCES):
            region = regions[:, k:k + 1]
            out.append(self._lay(bands(masked, region), region, masked, guide))
            if self.coarse:  # (B, 3, S/2, S/2) band and region (a coarse pixel is in it when its four pixels are)
                half = -F.max_pool2d(-region, 2)
                small = self._lay(F.avg_pool2d(coarse_band(masked, region), 2) * half, half, F.avg_pool2d(masked, 2),
                                  None if guide is None else F.avg_pool2d(guide, 2))
                out.append(F.interpolate(small, scale_factor=2, mode="bilinear", align_corners=False))
        return torch.cat(out, dim=1)

    def _lay(self, band: torch.Tensor, region: torch.Tensor, masked: torch.Tensor, guide: torch.Tensor = None):
        """One draw of `band`'s patches over a canvas of its size (colour-guided when `guide` is given)."""
        s = band.shape[-1]
        n, side = grid_cells(s), s - PATCH + 1
        uniforms, offset = self.draw((n * n,) if guide is None else (n * n, side * side))
        if guide is None:
            scores = None
        elif self.guide_cells > 1:
            scores = pattern_scores(masked, guide, self.guide_temperature, offset, self.guide_cells)
        else:
            scores = colour_scores(masked, guide, self.guide_temperature, offset)
        if scores is not None and self.stationary > 0:  # prefer texture to the outlines of objects
            scores = scores - self.stationary * peakiness(band).log()[:, None, :]
        if scores is not None and self.isotropic > 0:  # and to straight edges and stripes
            scores = scores - self.isotropic * coherence(band)[:, None, :]
        return patch_canvas(band, region, uniforms, offset, scores, self.normalise)

    def forward(self, masked: torch.Tensor, mask: torch.Tensor, features: torch.Tensor,
                guide: torch.Tensor = None) -> torch.Tensor:
        b, _, s, _ = masked.shape
        canvas = self.canvas(masked, mask, guide).to(features.dtype).view(b, self.canvases, 3, s, s)
        if self.prior:  # (B, F + bands, S, S)
            with torch.autocast(masked.device.type, enabled=False):
                prior = known_detail_prior(masked.float().contiguous(), mask.float().contiguous(),
                                           coarse=self.coarse, relative=True)
            features = torch.cat([features, prior.to(features.dtype)], dim=1)
        gates = self.gate(features)  # (B, canvases, S, S)
        return (gates[:, :, None] * canvas).sum(dim=1)

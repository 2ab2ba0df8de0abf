"""A small head that predicts where a photo's hole has detail: a map of the 8x8 blocks' detail (the realism
metrics' detail placement target, utils/realism.block_detail) from frozen per-block inputs.

Why: a fill can only place its texture as well as it knows where the scene has texture. The shipped generator's
own fill and the known squares' detail carried into the hole say it with correlations of ~0.31 and ~0.27 on val
(docs/realistic_fills.md); a head trained on cheap per-block inputs says it with ~0.40 on val
(benchmarks/probe_detail_predictor.py).
`PlacedExemplarTexture` lays the known squares' band-passed texture (copied patches, run 21; or random-phase textures
of them, run 24) over a generator's blurred fill by that map (benchmarks/probe_placed_exemplar.py, docs/realistic_fills.md).
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from data.masks import keep_known
from models.exemplar import (SOURCES, ExemplarTexture, bands, coarse_band, flatten_detail, known_detail_prior,
                             local_spectral_canvas, masked_blur, match_marginals, source_regions, spectral_canvas)
from models.filters import block_detail, pyramid_lowpass
from models.options import DETAIL_MAP_GROUPS

# Channel groups of `detail_map_inputs`, in order: name -> channels.
INPUT_GROUPS = DETAIL_MAP_GROUPS
# The groups a head needs no feature network for; on val they predict best (docs/realistic_fills.md).
DEFAULT_GROUPS = ("own", "prior", "colour", "hole", "position")
# Where PlacedExemplarTexture's texture comes from: the squares' 16-px patches, or random-phase textures of them.
TEXTURE_SOURCES = ("patches", "spectral", "local_spectral")


def select_groups(x: torch.Tensor, groups, present=tuple(INPUT_GROUPS)) -> torch.Tensor:
    """(B, C, n, n) inputs of the groups `present` (in INPUT_GROUPS order) -> the channels of `groups`."""
    parts, start = {}, 0
    for name in present:
        channels = INPUT_GROUPS[name]
        parts[name] = x[:, start:start + channels]
        start += channels
    return torch.cat([parts[g] for g in groups], dim=1)


@torch.no_grad()
def detail_map_inputs(masked: torch.Tensor, mask: torch.Tensor, filled: torch.Tensor, effnet: nn.Module = None,
                      groups=DEFAULT_GROUPS) -> torch.Tensor:
    """masked, filled (B, 3, S, S) in [-1, 1] (filled: a generator's fill, its known pixels the photo's), mask
    (B, 1, S, S) -> per-block inputs (B, C, S/8, S/8), the `groups` of INPUT_GROUPS in that order:
      s8, s16, s32  EfficientNet-Lite0 features of the fill at 2x (strides 4 / 8 / 16 of the fill), pooled or
                    upsampled to the blocks (needs `effnet`);
      own           log of the fill's own block detail (`block_detail`: the known blocks' are the photo's);
      prior         log of the known squares' detail carried into the hole (`known_detail_prior`, 2 bands);
      colour        the fill's block mean colour (sky is smooth, foliage is not);
      hole          the block's hole fraction;  position  its (row, column) in [-1, 1]."""
    n = masked.shape[-1] // 8
    parts = {}
    if {"s8", "s16", "s32"} & set(groups):
        image = F.interpolate((filled.float() + 1) / 2, scale_factor=2, mode="bilinear", align_corners=False)
        s8, s16, s32 = effnet.features(image, ("s8", "s16", "s32"))  # (B, 40, S/4), (B, 112, S/8), (B, 320, S/16)
        parts.update(s8=F.adaptive_avg_pool2d(s8, n), s16=F.adaptive_avg_pool2d(s16, n),
                     s32=F.interpolate(s32, size=(n, n), mode="bilinear", align_corners=False))
    parts["own"] = block_detail((filled.float() + 1) / 2, mask)[0][:, None].clamp_min(1e-4).log()
    parts["prior"] = F.avg_pool2d(known_detail_prior(masked.float(), mask.float()), 8).clamp_min(1e-4).log()
    parts["colour"] = F.avg_pool2d(filled.float(), 8)
    parts["hole"] = F.avg_pool2d(mask.float(), 8)
    rows = torch.linspace(-1, 1, n, device=mask.device).view(1, 1, n, 1).expand(len(mask), 1, n, n)
    parts["position"] = torch.cat([rows, rows.transpose(2, 3)], dim=1)
    return torch.cat([parts[g] for g in groups], dim=1)


class DetailMapHead(nn.Module):
    """(B, C, n, n) per-block inputs -> (B, n, n) a detail map, on an arbitrary scale (trained with a scale-free
    correlation loss): channel dropout, a 1x1 reduction, then three 3x3 convolutions (receptive field 7 blocks,
    56 px at 128²)."""

    def __init__(self, in_channels: int, width: int = 64, dropout: float = 0.0):
        super().__init__()
        self.net = nn.Sequential(
            nn.Dropout2d(dropout),
            nn.Conv2d(in_channels, width, 1), nn.GroupNorm(8, width), nn.SiLU(),
            nn.Conv2d(width, width, 3, padding=1), nn.SiLU(),
            nn.Conv2d(width, width, 3, padding=1), nn.SiLU(),
            nn.Conv2d(width, 1, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)[:, 0]


def hole_gain(prediction: torch.Tensor, hole: torch.Tensor, spread: float, floor: float = 0.1,
              exponential: bool = False) -> torch.Tensor:
    """prediction (B, n, n) a head's map, hole (B, n, n) bool (blocks wholly in the hole) -> (B, n, n) a positive
    gain of mean 1 over the hole: 1 + spread x the map standardised over the hole, clamped at `floor`
    (exponential: exp(spread x the standardised map)).

    Linear by default: the map is trained for a Pearson correlation, and an exponential lets a few blocks take
    most of the detail (on val the fill then places worse, docs/realistic_fills.md)."""
    hole = hole.float()
    count = hole.sum(dim=(1, 2), keepdim=True).clamp_min(1.0)
    mean = (prediction * hole).sum(dim=(1, 2), keepdim=True) / count
    std = (((prediction - mean) * hole) ** 2).sum(dim=(1, 2), keepdim=True).div(count).sqrt().clamp_min(1e-6)
    z = (prediction - mean) / std
    gain = torch.exp(spread * z) if exponential else (1 + spread * z).clamp_min(floor)
    return gain / ((gain * hole).sum(dim=(1, 2), keepdim=True) / count).clamp_min(1e-6)


def diagonal_source_weights(size: int) -> torch.Tensor:
    """(SOURCES, S, S): the bottom-left source's weight below the diagonal, the top-right one's above it, a soft
    8-px transition; squared weights sum to 1 (two independent textures keep their variance)."""
    rows = torch.arange(size).view(-1, 1).float()
    bottom = torch.sigmoid((rows - rows.view(1, -1)) / 8.0)
    weights = torch.stack([bottom, 1 - bottom])
    return weights / weights.pow(2).sum(0, keepdim=True).sqrt()


def even_laplacian(detail: torch.Tensor, mask: torch.Tensor, floor: float) -> torch.Tensor:
    """detail (B, 3, S, S), mask (B, 1, S, S) -> detail scaled so that its local mean |Laplacian| (grey, a 4-px
    Gaussian) is the same everywhere (its mean over the hole), raising by at most 1 / floor.

    Why: the copied patches' own detail varies as much as the draw (a patch of sky beside one of rock), so the
    gain alone does not decide where the fill has detail; after this it does (val placement 0.32 -> 0.37)."""
    grey = detail.mean(dim=1, keepdim=True)
    kernel = torch.tensor([[0.0, 1, 0], [1, -4, 1], [0, 1, 0]], device=detail.device).view(1, 1, 3, 3)
    lap = F.conv2d(F.pad(grey, (1, 1, 1, 1), mode="replicate"), kernel).abs()
    local = masked_blur(lap, torch.ones_like(lap), 4.0)
    reference = (local * mask).sum(dim=(2, 3), keepdim=True) / mask.sum(dim=(2, 3), keepdim=True).clamp_min(1.0)
    return detail * (reference / torch.maximum(local, floor * reference).clamp_min(1e-6))


def without_coarse_levels(x: torch.Tensor, levels: int) -> torch.Tensor:
    """(B, C, S, S) minus its content below 1 / 2^levels of its size (`levels` pyrDowns, then back up): what is
    added to the layout then leaves the layout's own coarse levels alone (the low-pass PSNR's)."""
    return x - pyramid_lowpass(x, levels)


class PlacedExemplarTexture(nn.Module):
    """(masked (B, 3, S, S), mask (B, 1, S, S), a generator's fill (B, 3, S, S)) -> a fill: the generator's
    layout (its fill blurred by G(layout_sigma): its own grain removed) plus the known squares' fine, mid and
    coarse bands (`ExemplarTexture(normalise=True, coarse=True)` canvases, colour-guided by the layout), each
    source weighted by `diagonal_source_weights`, the bands at `band_strengths` x their mean relative prior
    over the hole, made even in local detail (`even_laplacian`; even_floor 0: not), multiplied by `strength` x
    the gain of a `DetailMapHead`'s map (`hole_gain`), without their levels below 1 / 2^keep_levels
    (`without_coarse_levels`; 0: all kept). layout_sigma 0 keeps the generator's fill as it is.

    source (TEXTURE_SOURCES): "patches" as above; "spectral" the bands' random-phase textures instead
    (`models.exemplar.spectral_canvas`: their spectrum and colour covariance, no arrangement, so no pasted fragments
    of the squares' objects); "local_spectral" those of the squares' 24-px windows of the layout's colour
    (`local_spectral_canvas`, temperature guide_temperature). For both: flatten_floor > 0 evens the squares' local
    detail first (`flatten_detail`: one strong edge does not rule the spectrum), chroma scales the bands' colour
    deviation, match_histogram gives each band the squares' value distribution (`match_marginals`). shading (any
    source): the detail laid as grey shading that scales the layout's channels, so the fill keeps the layout's hue.

    Nothing here but the head is learnt; the head is trained on its own (benchmarks/probe_detail_predictor.py),
    with the generator frozen. Deterministic in eval mode (ExemplarTexture's eval draw)."""

    def __init__(self, head_width: int = 32, groups=DEFAULT_GROUPS, strength: float = 1.0, spread: float = 1.0,
                 band_strengths=(1.0, 1.0, 1.0), guide_temperature: float = 0.3, layout_sigma: float = 2.0,
                 even_floor: float = 0.3, keep_levels: int = 3, exponential_gain: bool = False, guide_cells: int = 1,
                 stationary: float = 0.0, isotropic: float = 0.0, source: str = "patches",
                 flatten_floor: float = 0.0, chroma: float = 1.0, match_histogram: bool = False,
                 shading: bool = False):
        super().__init__()
        if source not in TEXTURE_SOURCES:
            raise ValueError(f"source must be one of {TEXTURE_SOURCES}, got {source!r}")
        self.source, self.flatten_floor, self.chroma = source, flatten_floor, chroma
        self.match_histogram, self.shading = match_histogram, shading
        self.groups = tuple(groups)
        self.head = DetailMapHead(sum(INPUT_GROUPS[g] for g in self.groups), head_width)
        self.texture = ExemplarTexture(1, guide_temperature, normalise=True, coarse=True, guide_cells=guide_cells,
                                       stationary=stationary, isotropic=isotropic)
        del self.texture.gate  # only its canvases are used
        self.strength, self.spread, self.layout_sigma = strength, spread, layout_sigma
        self.register_buffer("band_strengths", torch.tensor(band_strengths, dtype=torch.float32), persistent=False)
        self.even_floor, self.keep_levels, self.exponential_gain = even_floor, keep_levels, exponential_gain

    def forward(self, masked: torch.Tensor, mask: torch.Tensor, filled: torch.Tensor,
                effnet: nn.Module = None) -> torch.Tensor:
        masked, mask, filled = masked.float(), mask.float(), filled.float()
        s = masked.shape[-1]
        hole = F.avg_pool2d(mask, 8)[:, 0] > 0.999  # (B, S/8, S/8) blocks wholly in the hole
        prediction = self.head(detail_map_inputs(masked, mask, filled, effnet, self.groups))
        gain = hole_gain(prediction, hole, self.spread, exponential=self.exponential_gain)
        gain = F.interpolate(gain[:, None], size=(s, s), mode="bilinear", align_corners=False)  # (B, 1, S, S)
        layout = masked_blur(filled, torch.ones_like(mask), self.layout_sigma) if self.layout_sigma > 0 else filled
        with torch.no_grad():
            level = known_detail_prior(masked, mask, coarse=True, relative=True)  # (B, bands, S, S)
            level = (level * mask).sum(dim=(2, 3)) / mask.sum(dim=(2, 3)).clamp_min(1.0) * self.band_strengths
            canvas = (self.texture.canvas(masked, mask, guide=layout) if self.source == "patches"
                      else self.spectral_canvas(masked, mask, layout)).unflatten(1, (SOURCES, self.texture.bands, 3))
            weights = diagonal_source_weights(s).to(masked)[None, :, None, None]  # (1, sources, 1, 1, S, S)
            detail = (canvas * weights * level[:, None, :, None, None, None]).sum(dim=(1, 2))  # (B, 3, S, S)
            if self.even_floor > 0:
                detail = even_laplacian(detail, mask, self.even_floor)
        detail = self.strength * gain * detail
        if self.shading:  # grey detail scaling each channel of the layout: its hue kept ([-1, 1] -> [0, 1] ratios)
            grey = layout.mean(dim=1, keepdim=True)
            detail = detail.mean(dim=1, keepdim=True) * (layout + 1) / (grey + 1).clamp_min(0.1)
        if self.keep_levels > 0:
            detail = without_coarse_levels(detail, self.keep_levels)
        return keep_known(masked, mask, (layout + detail).clamp(-1, 1))

    def spectral_canvas(self, masked: torch.Tensor, mask: torch.Tensor, layout: torch.Tensor) -> torch.Tensor:
        """(B, SOURCES * bands * 3, S, S), laid out as `ExemplarTexture.canvas`: per source, its fine, mid and
        coarse bands as random-phase textures (`spectral_canvas`), one white noise per source, seeded with 0 (the
        same for every image and call, like the patches' eval draw)."""
        s = masked.shape[-1]
        noise = torch.randn((SOURCES, s, s), generator=torch.Generator().manual_seed(0))
        out = []
        for k, region in enumerate(source_regions(mask).split(1, dim=1)):
            band = torch.cat([bands(masked, region), coarse_band(masked, region)], dim=1)  # (B, 9, S, S)
            if self.flatten_floor > 0:
                band = torch.cat([flatten_detail(b, region, self.flatten_floor) for b in band.split(3, dim=1)], 1)
            if self.chroma != 1:  # each band's colour deviation from its grey, scaled
                grouped = band.unflatten(1, (-1, 3))
                grey = grouped.mean(dim=2, keepdim=True)
                band = (grey + self.chroma * (grouped - grey)).flatten(1, 2)
            if self.source == "local_spectral":  # windows of the square chosen by the layout's colour
                out.append(local_spectral_canvas(band, region, noise[k], masked, layout,
                                                 self.texture.guide_temperature))
            else:
                out.append(spectral_canvas(band, region, noise[k]))
            if self.match_histogram:
                out[-1] = match_marginals(out[-1], band, region)
        return torch.cat(out, dim=1)

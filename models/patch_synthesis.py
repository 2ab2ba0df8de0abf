"""Coherent patch synthesis of the hole from the known squares, guided by a layout (issue 17's training-free probes).

The classical exemplar-based completion: Wexler, Shechtman & Irani, "Space-Time Completion of Video" (PAMI 2007)
and Kwatra et al., "Texture Optimization for Example-based Synthesis" (SIGGRAPH 2005), with the occurrence penalty of
Kaspar et al., "Self Tuning Texture Optimization" (Eurographics 2015). Coarse to fine over a 5-tap pyramid, each level
alternates
  - search: every p x p patch touching the hole finds its nearest source patch (exact search over every patch wholly
    inside the known pixels, of the image and its mirror), by the sum of squared differences of the current estimate
    and of the guide's (the layout's) low-pass, the latter x `guide_weight`; sources already used often cost more;
  - vote: each hole pixel becomes the weighted mean of the overlapping chosen patches' pixels (weights exp(-d / 2s^2),
    s^2 = `vote_sigma` x the median distance), and with `hard_final` the last vote keeps, per pixel, only the best
    matching patch's value (no averaging blur: every hole pixel is then a known pixel's value).
The nearest-neighbour field is carried from level to level (doubled), so the finer level starts from sharp copies.

Tensors: masked (B, 3, S, S) in [-1, 1] with the hole zeroed, mask (B, 1, S, S) with 1 = hole, guide (B, 3, S, S)
a fill whose low-pass is the layout to follow (e.g. the generator's fill). Plain functions; nothing trained.
"""
import torch
import torch.nn.functional as F

from data.masks import keep_known
from models.filters import pyr_down, pyramid_lowpass


def known_pyramid(masked: torch.Tensor, known: torch.Tensor, levels: int) -> tuple:
    """[image], [known] per level, finest first: the known pixels' normalised pyrDown (the hole does not leak in), a
    coarse pixel known where all its support is."""
    images, knowns = [masked], [known]
    for _ in range(levels - 1):
        weight = pyr_down(knowns[-1])
        images.append(pyr_down(images[-1] * knowns[-1]) / weight.clamp_min(1e-6))
        knowns.append((weight > 0.999).float())
    return images, knowns


def check_levels(mask: torch.Tensor, patch: int, levels: int) -> None:
    """ValueError unless the known pixels of a (1, 1, S, S) mask hold a whole patch at the coarsest level."""
    known = known_pyramid(torch.zeros_like(mask), 1.0 - mask.float(), levels)[1][-1]
    if not bool((F.unfold(known, patch).amin(dim=1) > 0.5).any()):
        raise ValueError(f"at {levels} levels the known squares of a {mask.shape[-1]}-px image hold no whole "
                         f"{patch}-px patch at the coarsest level: use fewer levels or a smaller patch")


class SourcePatches:
    """Every p x p patch wholly inside the known pixels of a (1, C, H, W) image and of its mirror image: `patches`
    and `guides` (N, C p p) of the image and the guide, `centres` (N, 3) = (mirrored, row, column) in that image."""

    def __init__(self, image: torch.Tensor, guide: torch.Tensor, known: torch.Tensor, patch: int):
        half = patch // 2
        rows, cols = known.shape[-2] - patch + 1, known.shape[-1] - patch + 1
        grid_r, grid_c = torch.meshgrid(torch.arange(rows), torch.arange(cols), indexing="ij")
        patches, guides, centres = [], [], []
        for mirrored in (0, 1):
            im, gd, kn = (image, guide, known) if not mirrored else (image.flip(-1), guide.flip(-1), known.flip(-1))
            inside = F.unfold(kn, patch).amin(dim=1)[0] > 0.5  # (rows * cols,)
            patches.append(F.unfold(im, patch)[0][:, inside].T)
            guides.append(F.unfold(gd, patch)[0][:, inside].T)
            count = int(inside.sum())
            centres.append(torch.stack([torch.full((count,), mirrored), grid_r.flatten()[inside] + half,
                                        grid_c.flatten()[inside] + half], dim=1))
        self.patches, self.guides, self.centres = torch.cat(patches), torch.cat(guides), torch.cat(centres)

    def nearest(self, wanted: torch.Tensor) -> torch.Tensor:
        """(T, 3) wanted centres -> (T,) index of the nearest source centre of the same mirroring."""
        distance = (wanted[:, None, 1:] - self.centres[None, :, 1:]).float().pow(2).sum(-1)
        distance = distance + 1e9 * (wanted[:, None, 0] != self.centres[None, :, 0])
        return distance.argmin(dim=1)


def soft_vote(chosen: torch.Tensor, weights: torch.Tensor, targets: torch.Tensor, size: tuple, patch: int):
    """(T, C p p) patches at the (T,) flat target centres -> (1, C, H, W) weighted mean of the overlaps, and the
    (1, 1, H, W) summed weights (0 where no patch reaches)."""
    half, (h, w) = patch // 2, size
    columns = chosen.new_zeros(chosen.shape[1], h * w)
    weight_columns = chosen.new_zeros(patch * patch, h * w)
    columns[:, targets] = (chosen * weights[:, None]).T
    weight_columns[:, targets] = weights[None]
    padded = (h + 2 * half, w + 2 * half)
    total = F.fold(columns[None], padded, patch)[..., half:h + half, half:w + half]
    weight = F.fold(weight_columns[None], padded, patch)[..., half:h + half, half:w + half]
    return total / weight.clamp_min(1e-8), weight


def hard_vote(chosen: torch.Tensor, distances: torch.Tensor, centres: torch.Tensor, size: tuple, patch: int):
    """Each pixel from the overlapping chosen patch that matched best (lowest distance): (1, C, H, W) and the
    (1, 1, H, W) mask of pixels some patch reached. centres (T, 2) are the patches' (row, column)."""
    half, (h, w) = patch // 2, size
    channels = chosen.shape[1] // (patch * patch)
    pixels = chosen.view(-1, channels, patch, patch)
    best = torch.full((h + 2 * half, w + 2 * half), float("inf"))
    out = chosen.new_zeros(channels, h + 2 * half, w + 2 * half)
    for dy in range(patch):
        for dx in range(patch):  # one target per (pixel, offset): no two writes collide within an offset
            rows, cols = centres[:, 0] + dy, centres[:, 1] + dx
            better = distances < best[rows, cols]
            best[rows[better], cols[better]] = distances[better]
            out[:, rows[better], cols[better]] = pixels[better, :, dy, dx].T
    inner = (slice(half, h + half), slice(half, w + half))
    return out[:, inner[0], inner[1]][None], torch.isfinite(best[inner]).float()[None, None]


def synthesise_one(masked: torch.Tensor, mask: torch.Tensor, guide: torch.Tensor, patch: int, levels: int,
                   iterations: tuple, guide_weight: float, occurrence: float, vote_sigma: float,
                   hard_final: bool) -> torch.Tensor:
    """One image (1, 3, S, S) -> its fill (1, 3, S, S); see the module docstring."""
    half = patch // 2
    images, knowns = known_pyramid(masked, 1.0 - mask, levels)
    guides = [pyramid_lowpass(keep_known(masked, mask, guide), 2)]  # the layout: what the low-pass PSNR compares
    for _ in range(levels - 1):
        guides.append(pyr_down(guides[-1]))
    estimate = field = previous = None
    for level in range(levels - 1, -1, -1):
        image, known, layout = images[level], knowns[level], guides[level]
        hole, size = 1.0 - known, tuple(image.shape[-2:])
        sources = SourcePatches(image, layout, known, patch)
        source_features = torch.cat([sources.patches, guide_weight * sources.guides], dim=1)  # (N, 2 C p p)
        source_norms = source_features.pow(2).sum(dim=1)
        targets = F.max_pool2d(hole, patch, 1, half)[0, 0].flatten() > 0  # patches that touch the hole
        centres = torch.nonzero(targets.view(size))  # (T, 2)
        if estimate is None:  # the coarsest level starts from the layout
            estimate = layout * hole + image * known
        else:  # the coarser field doubled: pixel (y, x) copies source 2 * s(y // 2, x // 2) + (y % 2, x % 2)
            coarse = field[(centres[:, 0] // 2).clamp(max=field.shape[0] - 1),
                           (centres[:, 1] // 2).clamp(max=field.shape[1] - 1)]
            at = previous[coarse]
            wanted = torch.stack([at[:, 0], 2 * at[:, 1] + centres[:, 0] % 2, 2 * at[:, 2] + centres[:, 1] % 2], 1)
            copied, reached = soft_vote(sources.patches[sources.nearest(wanted)], torch.ones(len(centres)),
                                        targets, size, patch)
            upsampled = F.interpolate(estimate, size=size, mode="bilinear", align_corners=False)
            estimate = torch.where(reached > 0, copied, upsampled) * hole + image * known
        counts = None
        steps = iterations[levels - 1 - level]
        for step in range(steps):
            target_features = torch.cat([
                F.unfold(F.pad(estimate, (half,) * 4, mode="reflect"), patch)[0].T[targets],
                guide_weight * F.unfold(F.pad(layout, (half,) * 4, mode="reflect"), patch)[0].T[targets]], dim=1)
            distances = (target_features.pow(2).sum(dim=1, keepdim=True) - 2 * target_features @ source_features.T
                         + source_norms[None])  # (T, N) squared distances
            if occurrence > 0 and counts is not None:  # sources used more than their share cost more
                distances = distances + occurrence * distances.mean() * (counts * len(counts) / len(centres))[None]
            best = distances.argmin(dim=1)
            distance = distances.gather(1, best[:, None])[:, 0].clamp_min(0)
            counts = torch.bincount(best, minlength=len(source_norms)).float()
            if hard_final and level == 0 and step == steps - 1:
                new, reached = hard_vote(sources.patches[best], distance, centres, size, patch)
            else:
                weights = torch.exp(-distance / (2 * vote_sigma * distance.median() + 1e-8)).clamp_min(1e-4)
                new, reached = soft_vote(sources.patches[best], weights, targets, size, patch)
            estimate = torch.where(reached > 0, new, estimate) * hole + image * known
        field = torch.full(size, -1, dtype=torch.long)
        field[centres[:, 0], centres[:, 1]] = best
        previous = sources.centres
    return keep_known(masked, mask, estimate)


@torch.no_grad()
def guided_patch_synthesis(masked: torch.Tensor, mask: torch.Tensor, guide: torch.Tensor, patch: int = 7,
                           levels: int = 3, iterations: tuple = (10, 4, 2), guide_weight: float = 3.0,
                           occurrence: float = 1.0, vote_sigma: float = 0.3, hard_final: bool = True) -> torch.Tensor:
    """(B, 3, S, S) fills, image by image (the squares of each photo are its own sources). `iterations` per level,
    coarsest first; guide_weight 0 ignores the layout (then `guide` only starts the coarsest level)."""
    if len(iterations) != levels or min(iterations) < 1:
        raise ValueError(f"iterations needs one count >= 1 per level ({levels}), got {tuple(iterations)}")
    check_levels(mask[:1], patch, levels)
    outputs = [synthesise_one(masked[i:i + 1].float().cpu(), mask[i:i + 1].float().cpu(), guide[i:i + 1].float().cpu(),
                              patch, levels, tuple(iterations), guide_weight, occurrence, vote_sigma, hard_final)
               for i in range(len(masked))]
    return torch.cat(outputs).to(masked)

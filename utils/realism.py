"""Realism metrics that need no pretrained network: patch SWD, low-pass hole PSNR, detail placement; and KID.

PSNR rewards the blurry mean of all plausible fills; these say whether a fill has a photograph's texture
(patch SWD), the right layout and colours (low-pass PSNR) and its detail where the scene has it (placement).
Images are float (B, 3, S, S) in [-1, 1], masks (B, 1, S, S) with 1 = hole, as everywhere in the project.

- `laplacian_pyramid` (models.filters): OpenCV-style 5-tap (1 4 6 4 1) / 16 pyrDown / pyrUp, reflect-101 borders.
- `PatchSWD`: sliced Wasserstein distance between the distributions of 7x7 RGB patches of each Laplacian level,
  outputs against truths (Karras et al. 2018, "Progressive Growing of GANs", sec. 5), patches wholly inside
  the hole; both normalised by the truths' per-level, per-channel mean and std, so that too little or too
  much detail counts, not only its shape. Beside it the truth-against-truth floor (independent samples).
- `lowpass_hole_psnr`: hole PSNR after two pyrDown steps (1/4 size): the layout, not the texture.
- `detail_placement`: Pearson correlation of the block mean |Laplacian| of output and truth over the 8x8
  blocks inside the hole: is the detail where the truth's is?
- `kernel_inception_distance`: KID's unbiased MMD with a cubic polynomial kernel (Binkowski et al. 2018), on
  any features (utils.metrics uses EfficientNet-Lite0's pooled ones); usable on ~50 images, unlike FID.
"""
import torch
import torch.nn.functional as F

# The pyramid and the block detail live beside the layers' filters (the losses and the generator use them too);
# re-exported for the metrics' callers.
from models.filters import (block_detail, laplacian_pyramid, level_hole_mse, level_masks, pyr_down,  # noqa: F401
                            pyr_up, pyramid_lowpass)


def hole_patch_centres(mask: torch.Tensor, patch: int, stride: int = 1) -> torch.Tensor:
    """(B, (h - patch) // stride + 1, (w - patch) // stride + 1) bool: the patch positions (every `stride` px) whose
    whole patch lies in the hole."""
    return (-F.max_pool2d(-mask.float(), patch, stride=stride))[:, 0] > 0.5


class PatchSWD:
    """Sliced Wasserstein distance between 7x7 patch distributions of outputs and truths, per Laplacian level.

    `update(output, truth, mask)` samples `patches_per_image` patches per image and level from the hole
    (positions drawn independently for the output and the truth, and a second independent truth sample for
    the floor), from a generator seeded with `seed`: every method scored on the same images draws the same
    positions. `compute()` -> {"swd": mean over levels, "swd_levels": [...], "swd_floor", "swd_floor_levels"}.
    Values x100 (ProGAN reports x1e3 of its own normalisation). An image whose hole holds no whole patch at a
    level adds nothing to that level.
    """

    PATCH = 7

    def __init__(self, patches_per_image: int = 256, directions: int = 128, repeats: int = 4, min_side: int = 16,
                 seed: int = 0):
        self.patches_per_image, self.directions, self.repeats, self.min_side = patches_per_image, directions, \
            repeats, min_side
        self.rng = torch.Generator().manual_seed(seed)
        self.seed = seed
        self.sets = None  # per level: {"out": [...], "true": [...], "true2": [...]} of (n, 3, 7, 7)

    def _sample(self, level: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """(n, 3, 7, 7) patches at random valid positions of one image's level (3, h, w); valid (h', w')."""
        positions = valid.flatten().nonzero()[:, 0]
        if len(positions) == 0:
            return level.new_zeros(0, 3, self.PATCH, self.PATCH)
        pick = positions[torch.randint(len(positions), (self.patches_per_image,), generator=self.rng)]
        width = valid.shape[-1]
        rows, cols = pick // width, pick % width
        offsets = torch.arange(self.PATCH)
        r = (rows[:, None] + offsets[None, :])[:, :, None]  # (n, 7, 1)
        c = (cols[:, None] + offsets[None, :])[:, None, :]  # (n, 1, 7)
        return level[:, r, c].permute(1, 0, 2, 3)  # (3, n, 7, 7) -> (n, 3, 7, 7)

    @torch.no_grad()
    def update(self, output: torch.Tensor, truth: torch.Tensor, mask: torch.Tensor) -> None:
        out_levels = laplacian_pyramid(output.cpu(), self.min_side)
        true_levels = laplacian_pyramid(truth.cpu(), self.min_side)
        masks = level_masks(mask.cpu(), len(out_levels))
        if self.sets is None:
            self.sets = [{"out": [], "true": [], "true2": []} for _ in out_levels]
        for store, out_l, true_l, mask_l in zip(self.sets, out_levels, true_levels, masks):
            valid = hole_patch_centres(mask_l, self.PATCH)
            for i in range(len(out_l)):
                store["out"].append(self._sample(out_l[i], valid[i]))
                store["true"].append(self._sample(true_l[i], valid[i]))
                store["true2"].append(self._sample(true_l[i], valid[i]))

    def compute(self) -> dict:
        if self.sets is None:
            return {"swd": float("nan"), "swd_levels": [], "swd_floor": float("nan"), "swd_floor_levels": []}
        directions = torch.Generator().manual_seed(self.seed + 1)
        levels, floors = [], []
        for store in self.sets:
            out, true, true2 = (torch.cat(store[k]).flatten(2) for k in ("out", "true", "true2"))  # (n, 3, 49)
            if len(true) == 0:
                levels.append(float("nan"))
                floors.append(float("nan"))
                continue
            mean = true.mean(dim=(0, 2), keepdim=True)  # the truths' per-channel statistics at this level
            std = true.std(dim=(0, 2), keepdim=True).clamp_min(1e-8)
            out, true, true2 = ((x - mean) / std for x in (out, true, true2))
            levels.append(100 * sliced_wasserstein(out.flatten(1), true.flatten(1), self.directions,
                                                   self.repeats, directions))
            floors.append(100 * sliced_wasserstein(true2.flatten(1), true.flatten(1), self.directions,
                                                   self.repeats, directions))
        return {"swd": _nanmean(levels), "swd_levels": levels, "swd_floor": _nanmean(floors),
                "swd_floor_levels": floors}


def sliced_wasserstein(a: torch.Tensor, b: torch.Tensor, directions: int = 128, repeats: int = 4,
                       generator: torch.Generator = None) -> float:
    """Mean over `repeats` x `directions` random unit directions of the mean |sorted(a.d) - sorted(b.d)|.

    a, b: (n, D) samples of equal count (the 1-D Wasserstein-1 distance of each projection, quantile-matched).
    """
    if a.shape != b.shape:
        raise ValueError(f"sliced_wasserstein needs equal sample counts, got {tuple(a.shape)} and {tuple(b.shape)}")
    total = 0.0
    for _ in range(repeats):
        d = torch.randn(a.shape[1], directions, generator=generator)
        d = d / d.norm(dim=0, keepdim=True)
        pa, _ = torch.sort(a.double() @ d.double(), dim=0)
        pb, _ = torch.sort(b.double() @ d.double(), dim=0)
        total += float((pa - pb).abs().mean())
    return total / repeats


def _nanmean(values) -> float:
    kept = [v for v in values if v == v]
    return sum(kept) / len(kept) if kept else float("nan")


def lowpass_hole_psnr(output: torch.Tensor, truth: torch.Tensor, mask: torch.Tensor, steps: int = 2) -> list:
    """Per image: hole PSNR (dB, [0, 1] scale) of both images after `steps` pyrDown steps (1/4 size at 2),
    the hole at that size being the coarse pixels all of whose fine pixels are hole."""
    sq = level_hole_mse((output.float() + 1) / 2, (truth.float() + 1) / 2, mask, steps)
    return [float(v) for v in 10 * torch.log10(1.0 / sq.clamp_min(1e-10))]


def detail_placement(output: torch.Tensor, truth: torch.Tensor, mask: torch.Tensor) -> list:
    """Per image: Pearson correlation over the 8x8 blocks inside the hole of the block mean |Laplacian| of
    output and truth; 0 for a fill without detail; NaN where the truth's detail does not vary, which the
    summary leaves out."""
    return block_correlations(block_detail((output.float() + 1) / 2, mask)[0], truth, mask)


def block_correlations(blocks: torch.Tensor, truth: torch.Tensor, mask: torch.Tensor) -> list:
    """Per image: Pearson correlation of blocks (B, S/8, S/8) (a fill's block detail, or any map's 8x8 block
    means) with the truth's block detail, over the blocks inside the hole (see `detail_placement`)."""
    true, inside = block_detail((truth.float() + 1) / 2, mask)
    scores = []
    for o, t, m in zip(blocks, true, inside):
        o, t = o[m].double(), t[m].double()
        if len(t) < 3 or t.std() < 1e-6:
            scores.append(float("nan"))
            continue
        if o.std() < 1e-12:  # a flat fill places no detail anywhere
            scores.append(0.0)
            continue
        o, t = o - o.mean(), t - t.mean()
        scores.append(float((o * t).sum() / (o.norm() * t.norm())))
    return scores


def kernel_inception_distance(real: torch.Tensor, fake: torch.Tensor) -> float:
    """Unbiased MMD^2 between two feature sets (n, d), (m, d) with k(x, y) = (x.y / d + 1)^3 (KID)."""
    real, fake = real.double(), fake.double()
    n, m, d = len(real), len(fake), real.shape[1]
    if n < 2 or m < 2:
        return float("nan")
    k_rr, k_ff, k_rf = ((a @ b.T / d + 1) ** 3 for a, b in ((real, real), (fake, fake), (real, fake)))
    return float((k_rr.sum() - k_rr.diagonal().sum()) / (n * (n - 1))
                 + (k_ff.sum() - k_ff.diagonal().sum()) / (m * (m - 1)) - 2 * k_rf.mean())


# --- Copying from the training photos (benchmarks/probe_memorisation.py) ------------------------------------------
def structure_patches(images: torch.Tensor, size: int = 24, stride: int = 6, pooled: int = 8,
                      mask: torch.Tensor = None) -> list:
    """Per image, its size x size windows at `stride` (only those wholly inside the hole, with a mask), each
    average-pooled to pooled x pooled RGB and flattened: [(n_i, 3 pooled^2)]. The pooling keeps a window's
    structure (an arch, a ridge, a trunk) and drops its pixel grain, so that what is compared is what a person
    would call the same thing. images (B, 3, H, W) in [-1, 1]; mask (B, 1, H, W), 1 = hole."""
    cells = F.avg_pool2d(images.float(), size // pooled)  # (B, 3, H / cell, W / cell)
    step, span = stride // (size // pooled), pooled
    if step < 1 or size % pooled or stride % (size // pooled):
        raise ValueError(f"size {size} must be a multiple of pooled {pooled}, stride {stride} of size / pooled")
    windows = cells.unfold(2, span, step).unfold(3, span, step)  # (B, 3, nh, nw, pooled, pooled)
    b, _, nh, nw = windows.shape[:4]
    windows = windows.permute(0, 2, 3, 1, 4, 5).reshape(b, nh * nw, -1)
    if mask is None:
        return list(windows)
    inside = hole_patch_centres(mask, size, stride)[:, :nh, :nw].reshape(b, -1)
    return [w[keep] for w, keep in zip(windows, inside)]


def nearest_distances(queries: torch.Tensor, bank: torch.Tensor, chunk: int = 8192) -> torch.Tensor:
    """(n,) RMS distance (per value) of each query (n, d) to its nearest row of bank (m, d); inf for an empty bank."""
    best = torch.full((len(queries),), float("inf"))
    q2 = (queries ** 2).sum(1, keepdim=True)
    for start in range(0, len(bank), chunk):
        part = bank[start:start + chunk]
        d2 = q2 + (part ** 2).sum(1) - 2 * queries @ part.T  # (n, chunk)
        best = torch.minimum(best, d2.min(1).values)
    return (best.clamp_min(0) / queries.shape[1]).sqrt()


def copying_share(to_train: torch.Tensor, to_unseen: torch.Tensor) -> float:
    """The share of a fill's patches nearer a training photo's patch than any unseen photo's (`to_train`,
    `to_unseen`: their nearest distances to banks of as many photos each), ties split. Photos drawn from one
    distribution give 0.5 whatever their smoothness (a blurred patch is near blurred parts of both banks);
    a generator that pastes training content gives more (the data-copying test of Meehan et al. 2020 compares
    the same two distances)."""
    closer = (to_train < to_unseen).double() + 0.5 * (to_train == to_unseen).double()
    return float(closer.mean()) if len(closer) else float("nan")

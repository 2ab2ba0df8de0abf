"""A discriminator on frozen pretrained features (Projected GAN) for inpainting, and its input transforms.

Sauer et al., "Projected GANs Converge Faster" (NeurIPS 2021): the real/fake judgement is made on the
features of a frozen ImageNet network, here EfficientNet-Lite0 (models/effnet.py, the network whose
weights ship with pip). Its features at strides 4, 8, 16 and 32 (24, 40, 112, 320 channels: after
`_blocks.2`, `_blocks.4`, `_blocks.10`, `_blocks.15`) are mixed with FIXED random weights, across channels
(1x1 convolution to 64/128/256/512 channels, CCM) and across scales (the coarser mixed map, upsampled and
projected by a 1x1 convolution, is added to the finer one, CSM), so that every head sees a random
projection of all deeper features; only the small heads train. A frozen feature network cannot be
overfitted by a discriminator trained on a few hundred photos, which is what makes it teach texture in a
CPU budget where a PatchGAN from scratch does not.

For inpainting (Hukkelås & Lindseth, TriA-GAN, WACV 2024): one patch head per scale (a logit per
position, not one per image), conditioned on the mask (a coarse copy of it is fed to each head, so a
seam at the hole's border can be judged), trained with a masked hinge loss (losses.masked_hinge_*),
DiffAugment on every input (`diff_augment`) and a blur of the inputs that fades out early
(`blur_sigma_at`), which keeps the discriminator from overpowering the generator at once.

The feature network is frozen and stays in eval mode whatever `.train()` says (BatchNorm statistics
fixed); gradients still flow through it to the generator's image.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils import spectral_norm

from models.effnet import FrozenParts
from models.filters import separable_gaussian
from models.options import AUGMENTATIONS

TAPS = ("s4", "s8", "s16", "s32")
TAP_CHANNELS = (24, 40, 112, 320)
MIXED_CHANNELS = (64, 128, 256, 512)


class ProjectedDiscriminator(FrozenParts, nn.Module):
    """(masked (B, 3, S, S), mask (B, 1, S, S), image (B, 3, S, S)) -> list of 4 logit maps
    (B, 1, S/4, S/4), (B, 1, S/8, S/8), (B, 1, S/16, S/16), (B, 1, S/32, S/32), one logit per position
    (with `upsample` u: u times as many per side; the image is enlarged before the feature network).

    `features` is an EfficientNetLite0 (or any module with `.features(x in [0, 1], stages)` giving
    TAP_CHANNELS maps at strides 4..32); it is frozen here. The `masked` argument is not used (the image
    already holds the known pixels); it keeps the call of models.gan.PatchDiscriminator.
    """

    def __init__(self, features: nn.Module, head_channels: int = 64, mixed_channels=MIXED_CHANNELS,
                 tap_channels=TAP_CHANNELS, seed: int = 0, upsample: int = 1, head_layers: int = 1):
        super().__init__()
        self.upsample = upsample  # input enlarged this many times (bilinear; the mask nearest) before the features
        # The frozen network's weights come from its own package, not from our checkpoints (19 MB each):
        # state_dict() leaves them out and load_state_dict() neither needs nor takes them.
        self.freeze_part("features", features)
        # Fixed random mixing (CCM, CSM): drawn from a private generator so that building a discriminator
        # does not move torch's global RNG (a resumed run stays exact) and the projection depends on `seed` only.
        rng = torch.Generator().manual_seed(seed)
        self.channel_mix = nn.ModuleList(_fixed_conv(c_in, c_out, rng) for c_in, c_out in zip(tap_channels,
                                                                                               mixed_channels))
        # scale_mix[k] maps the mixed map of level k + 1 (coarser) to level k's channels.
        self.scale_mix = nn.ModuleList(_fixed_conv(mixed_channels[k + 1], mixed_channels[k], rng)
                                       for k in range(len(mixed_channels) - 1))
        if head_layers < 1:
            raise ValueError(f"head_layers must be at least 1, got {head_layers}")
        self.heads = nn.ModuleList(_patch_head(c + 1, head_channels, head_layers) for c in mixed_channels)

    def trainable_parameters(self):
        return list(self.heads.parameters())

    def compile_features(self, **options) -> None:
        """torch.compile (in place) the frozen part, the feature network and the fixed mixing: most of D's operators.
        The heads stay eager: their spectral norm updates its power-iteration vectors in place on every forward,
        which inductor's compiled backward refuses ("[torch.FloatTensor [1]] is at version 2; expected version 1":
        the logit layer's vector; torch 2.14, CPU). state_dict() is unchanged (no `_orig_mod.` keys)."""
        self.mixed_features = torch.compile(self.mixed_features, **options)

    def mixed_features(self, image: torch.Tensor) -> list:
        """[(B, 64, S/4, S/4), (B, 128, S/8, S/8), (B, 256, S/16, S/16), (B, 512, S/32, S/32)]."""
        taps = self.features.features((image + 1) / 2, TAPS)
        mixed = [mix(tap) for mix, tap in zip(self.channel_mix, taps)]
        for k in range(len(mixed) - 2, -1, -1):  # coarse to fine: add the coarser (already mixed) map
            coarser = F.interpolate(mixed[k + 1], size=mixed[k].shape[-2:], mode="bilinear", align_corners=False)
            mixed[k] = mixed[k] + self.scale_mix[k](coarser)
        return mixed

    def forward(self, masked: torch.Tensor, mask: torch.Tensor, image: torch.Tensor) -> list:
        if self.upsample > 1:
            image = F.interpolate(image, scale_factor=self.upsample, mode="bilinear", align_corners=False)
        logits = []
        for head, mixed in zip(self.heads, self.mixed_features(image)):
            coarse_mask = F.adaptive_avg_pool2d(mask.to(mixed.dtype), mixed.shape[-2:])
            logits.append(head(torch.cat([mixed, coarse_mask], dim=1)))
        return logits


def _patch_head(c_in: int, width: int, layers: int) -> nn.Sequential:
    """`layers` spectral-norm 3x3 convolutions (the k-th dilated 2^k, so that the receptive field doubles with each:
    3, 7, 15, 31 positions) and a 1x1 logit; the spatial size is kept, one logit per position. One layer is the
    shallow head of the Projected GAN paper's code; deeper heads judge how the finer scales' features are arranged
    over a wider window (at `upsample` 2, 15 positions of the 1/4-scale map span 30 px of the 128² image)."""
    blocks = [spectral_norm(nn.Conv2d(c_in, width, 3, 1, 1)), nn.LeakyReLU(0.2, True)]
    for k in range(1, layers):
        blocks += [spectral_norm(nn.Conv2d(width, width, 3, 1, padding=2 ** k, dilation=2 ** k)),
                   nn.LeakyReLU(0.2, True)]
    return nn.Sequential(*blocks, spectral_norm(nn.Conv2d(width, 1, 1)))


def _fixed_conv(c_in: int, c_out: int, rng: torch.Generator) -> nn.Conv2d:
    """A 1x1 convolution with fixed random weights (Kaiming-uniform scale, as nn.Conv2d's init), not trained."""
    conv = nn.Conv2d(c_in, c_out, 1, bias=False)
    bound = 1.0 / math.sqrt(c_in)
    with torch.no_grad():
        conv.weight.copy_(torch.rand(conv.weight.shape, generator=rng) * 2 * bound - bound)
    return conv.requires_grad_(False)


# --- The discriminator's inputs ----------------------------------------------------------------------------
def blur_sigma_at(images_seen: int, start_sigma: float, fade_images: int) -> float:
    """Std (px) of the Gaussian blur on D's inputs: start_sigma, fading linearly to 0 after `fade_images`
    training images (TriA-GAN; StyleGAN3 blurs D's inputs for its first 200k images likewise)."""
    if start_sigma <= 0 or fade_images <= 0 or images_seen >= fade_images:
        return 0.0
    return start_sigma * (1.0 - images_seen / fade_images)


def blur(image: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian blur (separable, radius 2 sigma, reflect padding), identity at sigma 0; differentiable."""
    if sigma <= 0:
        return image
    return separable_gaussian(image, sigma, radius_sigmas=2, padding="reflect")




def diff_augment(image: torch.Tensor, mask: torch.Tensor, policy=AUGMENTATIONS) -> tuple:
    """DiffAugment (Zhao et al., NeurIPS 2020) of D's input: differentiable, new draws per call, torch's RNG.

    image (B, 3, S, S) in [-1, 1], mask (B, 1, S, S). color: brightness +-0.5, saturation x[0, 2],
    contrast x[0.5, 1.5]; translation: up to 1/8 of the side, zero padding, the mask moves with the image;
    cutout: a zeroed square of half the side (the mask is kept: a cut patch is judged like any other).
    Returns (image, mask).
    """
    unknown = set(policy) - set(AUGMENTATIONS)
    if unknown:
        raise ValueError(f"unknown augmentation(s) {sorted(unknown)}; choose from {AUGMENTATIONS}")
    b, dev = image.shape[0], image.device
    if "color" in policy:
        x = (image + 1) / 2
        x = x + (torch.rand(b, 1, 1, 1, device=dev, dtype=x.dtype) - 0.5)
        mean = x.mean(dim=1, keepdim=True)
        x = (x - mean) * (torch.rand(b, 1, 1, 1, device=dev, dtype=x.dtype) * 2) + mean
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        x = (x - mean) * (torch.rand(b, 1, 1, 1, device=dev, dtype=x.dtype) + 0.5) + mean
        image = x * 2 - 1
    if "translation" in policy:
        both = translate(torch.cat([image, mask.to(image.dtype)], dim=1), max_shift=image.shape[-1] // 8)
        image, mask = both[:, :3], both[:, 3:]
    if "cutout" in policy:
        image = image * cutout_keep(image, side=image.shape[-1] // 2)
    return image, mask


def translate(x: torch.Tensor, max_shift: int) -> torch.Tensor:
    """Shift each image by its own random (dy, dx) in [-max_shift, max_shift], zero padding (a gather)."""
    b, _, h, w = x.shape
    if max_shift <= 0:
        return x
    shift = torch.randint(-max_shift, max_shift + 1, (b, 2, 1, 1), device=x.device)
    rows = torch.arange(h, device=x.device).view(1, h, 1) - shift[:, 0]  # (B, H, 1): source row
    cols = torch.arange(w, device=x.device).view(1, 1, w) - shift[:, 1]  # (B, 1, W): source column
    inside = ((rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)).unsqueeze(1)  # (B, 1, H, W)
    index = (rows.clamp(0, h - 1) * w + cols.clamp(0, w - 1)).view(b, 1, h * w).expand(-1, x.shape[1], -1)
    moved = x.reshape(b, x.shape[1], h * w).gather(2, index).view_as(x)
    return moved * inside.to(x.dtype)


def cutout_keep(x: torch.Tensor, side: int) -> torch.Tensor:
    """(B, 1, H, W) multiplier: 0 on one random side x side square per image (it may overhang the border)."""
    b, _, h, w = x.shape
    centre = torch.stack([torch.randint(0, h, (b,), device=x.device), torch.randint(0, w, (b,), device=x.device)], 1)
    rows = torch.arange(h, device=x.device).view(1, h, 1)
    cols = torch.arange(w, device=x.device).view(1, 1, w)
    inside = (((rows - centre[:, 0, None, None]).abs() <= side // 2)
              & ((cols - centre[:, 1, None, None]).abs() <= side // 2))
    return (~inside).unsqueeze(1).to(x.dtype)

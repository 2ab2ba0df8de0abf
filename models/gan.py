"""U-Net generator and PatchGAN discriminator for gap filling (pix2pix architecture).

Architecture after Isola et al., "Image-to-Image Translation with Conditional Adversarial
Networks" (pix2pix, 2017): `unet_256` (8 stride-2 levels with skip connections, BatchNorm, tanh)
and the 70x70 `NLayerDiscriminator` (n_layers=3). Differences for the gap task:
  * the generator also receives the mask as a 4th input channel (1 = generate), and its output
    keeps the known pixels of the input exactly (out = mask * G(x) + (1 - mask) * x);
  * the depth adapts to the input size: log2(S) levels, so the bottleneck is always 1x1
    (8 at 256^2, 6 at 64^2);
  * options for a 68 % hole (see UNetGenerator): resize-convolution decoder, GroupNorm, dilated
    residual blocks, a start from the harmonic fill with a learned residual, and a full-resolution
    texture head fed with noise.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from data.masks import keep_known
from models.effnet import FrozenParts
from models.exemplar import ExemplarTexture
from models.filters import pyramid_lowpass, smooth_detail_amplitude
from models.harmonic import coarse_harmonic_fill
from models.options import LAYOUT_SIDE, NORMS, RESIZE_MODES, UPSAMPLING, GeneratorConfig


def init_weights(module: nn.Module, gain: float = 0.02, skip: nn.Module = None) -> None:
    """pix2pix init: conv weights ~ N(0, 0.02), BatchNorm weights ~ N(1, 0.02), biases 0 (not inside `skip`)."""
    skipped = set(skip.modules()) if skip is not None else set()
    for m in module.modules():
        if m in skipped:
            continue
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm, nn.InstanceNorm2d)) and m.weight is not None:
            nn.init.normal_(m.weight, 1.0, gain)
            nn.init.zeros_(m.bias)




def norm_layer(kind: str, channels: int) -> nn.Module:
    """BatchNorm (pix2pix), GroupNorm (32 groups or fewer; batch-independent, so train = eval) or
    InstanceNorm (affine)."""
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "group":
        return nn.GroupNorm(min(32, channels // 4) or 1, channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    raise ValueError(f"unknown norm {kind!r}; choose from {NORMS}")


def upsample_conv(c_in: int, c_out: int, kind: str, bias: bool) -> nn.Module:
    """x2 upsampling: a 4x4 stride-2 transposed convolution (pix2pix), or a resize + 3x3 convolution, which
    cannot leave the period-2 checkerboard grid (Odena et al. 2016, "Deconvolution and Checkerboard Artifacts",
    Distill). "resize" repeats pixels (nearest): each of the coarse decoder levels then hands the next 2x2 blocks
    of equal values, and a generator trained to add texture can keep them as 4-8 px blocks aligned to the grid
    (docs/realistic_fills.md, "Block-aligned texture"). "bilinear" interpolates instead; it has the same weights, so
    --init_from moves a generator between the two."""
    if kind == "transpose":
        return nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=bias)
    if kind in RESIZE_MODES:
        return nn.Sequential(nn.Upsample(scale_factor=2, mode=RESIZE_MODES[kind]),
                             nn.Conv2d(c_in, c_out, 3, 1, 1, bias=bias))
    raise ValueError(f"unknown upsampling {kind!r}; choose from {UPSAMPLING}")


class DilatedResBlock(nn.Module):
    """x + conv3x3(dilation d) -> norm -> ReLU -> conv3x3 -> norm: wider context at one level."""

    def __init__(self, channels: int, dilation: int, norm: str):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, 1, dilation, dilation=dilation, bias=False), norm_layer(norm, channels),
            nn.ReLU(True), nn.Conv2d(channels, channels, 3, 1, 1, bias=False), norm_layer(norm, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ContextualAttention(nn.Module):
    """Copy features from the known pixels into the hole (Yu et al. 2018, "Generative Image Inpainting with
    Contextual Attention", DeepFill; the exemplar-based fill's strength, inside the network).

    (features (B, C, h, w), mask (B, 1, S, S)) -> features: every hole position attends over the known
    positions of the same map, by the cosine similarity of their 3x3 feature patches (softmax with a fixed
    scale of 10, DeepFill's), and receives the attention-weighted mean of the known features through a 1x1
    convolution that starts at zero, so adding the layer to a trained model changes nothing. A position is
    known when all of its pixels are (a min-pool of the mask).
    """

    SCALE = 10.0

    def __init__(self, channels: int):
        super().__init__()
        self.out = nn.Conv2d(channels, channels, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        hole = F.adaptive_max_pool2d(mask.to(x.dtype), (h, w)).flatten(1)  # (B, hw): 1 unless wholly known
        patches = F.unfold(x.float(), 3, padding=1)  # (B, 9C, hw)
        patches = patches / patches.norm(dim=1, keepdim=True).clamp_min(1e-6)
        similarity = torch.bmm(patches.transpose(1, 2), patches)  # (B, hw queries, hw keys)
        similarity = similarity.masked_fill(hole[:, None, :] > 0.5, float("-inf"))  # only known keys
        has_key = (hole < 0.5).any(dim=1)  # an image without known positions copies nothing
        weights = torch.softmax(self.SCALE * similarity, dim=-1).nan_to_num(0.0) * has_key[:, None, None]
        copied = torch.bmm(x.float().flatten(2), weights.transpose(1, 2)).view(b, c, h, w).to(x.dtype)
        return x + hole.view(b, 1, h, w) * self.out(copied)


class PretrainedContext(FrozenParts, nn.Module):
    """Frozen ImageNet features of the generator's start image, added to its encoder (pretrained context).

    A U-Net trained on a few hundred photos learns what a scene *is* from them alone: run 29 draws the training
    set's kind of arches over a held-out meadow (docs/realistic_fills.md). EfficientNet-Lite0 (models/effnet.py) has
    seen ImageNet's 1.3 M photos: its maps of the start image (the known squares and the harmonic fill between
    them) at strides 4, 8, 16 and 32 (24, 40, 112, 320 channels) are projected by a 1x1 convolution each to the
    encoder's width at that resolution and added there (a pretrained network's features as the inpainting
    network's prior, as Cao et al., ECCV 2022, do with a masked autoencoder's). `features` is any module with
    `.features(x in [0, 1], stages)`; it is frozen, stays in eval mode, and its weights are left out of the state
    dict (they come from the pip package). The projections start at zero: adding the layer to a trained
    generator changes nothing. What it did in training: docs/realistic_fills.md, run 32.
    `upsample` 2 shows the network the start image at 2S (bilinear) and average-pools each map by 2 back to the
    encoder's size: ImageNet models are trained at 224 px, and at S = 128 the deepest map is 4 x 4 (run 86).
    (B, 3, S, S) in [-1, 1] -> [(B, widths[0], S/4, S/4), ..., (B, widths[3], S/32, S/32)].
    """

    STAGES = ("s4", "s8", "s16", "s32")
    CHANNELS = (24, 40, 112, 320)

    def __init__(self, features: nn.Module, widths, upsample: int = 1):
        super().__init__()
        self.upsample = upsample
        self.freeze_part("features", features)
        self.project = nn.ModuleList(nn.Conv2d(c, w, 1) for c, w in zip(self.CHANNELS, widths))
        for conv in self.project:
            nn.init.zeros_(conv.weight)
            nn.init.zeros_(conv.bias)

    def forward(self, start: torch.Tensor) -> list:
        with torch.no_grad():  # nothing upstream of the start image learns
            image = (start + 1) / 2
            if self.upsample > 1:
                image = F.interpolate(image, scale_factor=self.upsample, mode="bilinear", align_corners=False)
            maps = self.features.features(image, self.STAGES)
            if self.upsample > 1:  # (B, C, 2S/k, 2S/k) -> (B, C, S/k, S/k)
                maps = [F.avg_pool2d(m, self.upsample) for m in maps]
        return [project(m.to(start.dtype)) for project, m in zip(self.project, maps)]


class UNetGenerator(FrozenParts, nn.Module):
    """U-Net: (masked image (B, 3, S, S), mask (B, 1, S, S)) -> completed image (B, 3, S, S) in [-1, 1].

    Level i (0 = outermost) has min(2^i, 8) * ngf channels at resolution S / 2^(i+1). Built from a
    `GeneratorConfig`, whose fields are:
      image_size  S, a power of two (the depth is log2 S: the bottleneck is 1x1);
      ngf         the width of the outermost level;
      norm        "batch" | "group" | "instance" (see `norm_layer`);
      upsampling  "transpose" (pix2pix) | "resize" (nearest x2 + 3x3 conv: no checkerboard grid) |
                  "bilinear" (bilinear x2 + 3x3 conv: no block grid either; see `upsample_conv`);
      res_blocks  dilated residual blocks (dilation 1, 2, 4, ...) at the S/16 level, for context;
      harmonic    start from the harmonic fill of the hole (models/harmonic.py) instead of grey: the
                  network sees (harmonic fill, mask) and adds a residual in tanh-logit space,
                  out = tanh(atanh(harmonic) + r). The last layer starts at zero, so an untrained
                  model already returns the harmonic fill, the strongest training-free floor.
      texture_noise  channels of Gaussian noise fed, with the last decoder features, to a small
                  full-resolution head whose output adds to the residual (0 = no head). A
                  deterministic network trained with pixel losses returns a central estimate (L1: the
                  median, L2: the mean) of an uncertain hole: a blur. Noise gives it a source of detail
                  whose phase it need not guess, as StyleGAN's per-pixel noise inputs do for hair and
                  foliage (Karras et al. 2019, sec. 3.2).
                  The head's last layer starts at zero, so adding it to a trained model changes nothing.
                  In train mode the noise comes from torch's global RNG (checkpoints store it: resume
                  stays exact); in eval mode one pattern from a generator seeded with 0, the same for every
                  image of a batch, so a fill is reproducible and does not depend on its batch.
      attention   a `ContextualAttention` layer on the decoder's S/4 map (zero-initialised: it can be added
                  to a trained model).
      exemplar    an `ExemplarTexture` layer (models/exemplar.py): the known squares' own band-passed detail,
                  laid over the hole in random cross-faded patches and gated per pixel from the last decoder
                  features (zero-initialised: it can be added to a trained model); exemplar_guide > 0 draws
                  each patch by its colour's match with the U-Net's own fill (the colour temperature);
                  exemplar_normalise lays every patch at its source's RMS detail, so the gates set the amount;
                  exemplar_coarse adds a coarser band (G5 - G10, laid at half resolution); exemplar_prior gives
                  the gates the squares' detail carried into the hole (`known_detail_prior`) as extra inputs.
      noise_injection  N > 0: one noise map added to each of the decoder's N finest maps (S/2, S/4, S/8 in that
                  order: 3 = all three) with a learned per-channel strength that starts at zero (StyleGAN,
                  Karras et al. 2019 sec. 3.2; MI-GAN), in place of or beside the texture head: detail from
                  noise at the scales and in the channels where training rewards it, passed through the
                  decoder's remaining layers. Noise as for texture_noise (global RNG in training, one seeded
                  pattern per size in eval). On val it drew a tartan of stripes (docs/realistic_fills.md, runs 22-23).
      context_features  a `PretrainedContext`: frozen EfficientNet-Lite0 maps of the start image added to the
                  encoder at S/4, S/8, S/16 and S/32 (levels 1-4; zero-initialised: --init_from may add it). The
                  feature network is passed to the constructor (`context_network`; utils.loading.build_generator
                  loads it), since a model file does no I/O. context_upsample 2 shows it the start image at 2S.
      dropout     p > 0: dropout at that rate after the three innermost decoder blocks (their S/64 to S/16
                  outputs, where pix2pix's generator has it; Isola et al. 2017), in training only: a regulariser for
                  a network trained on few photos. It has no weights, so checkpoints load with or without it.
      detail_smoothing  sigma > 0 (in 8-px blocks): the fill's detail amplitude evened out across blocks, its
                  detail_smoothing_bands finest Laplacian bands rescaled inside the hole
                  (models.filters.smooth_detail_amplitude; no weights). An inference setting, picked on a validation
                  split (`benchmarks/score.py --detail_smoothing`) and stored in an export (`main.py --export ...
                  --detail_smoothing S`).
      coarse_stage  the path of a trained generator file whose fill replaces the harmonic start (a two-stage
                  coarse-to-fine network, as DeepFill's, Yu et al. 2018: the first stage sets the layout, this one
                  adds the residual); coarse_stage_sha256 is that file's hash. The frozen network is passed to the
                  constructor (`coarse_network`; utils.loading.build_generator loads the file and checks the hash),
                  stays in eval mode, and its weights are left out of the state dict: the file holds them.
                  coarse_stage_lowpass L > 0 keeps only the fill's content below 1/2^L of its size (L pyrDowns and
                  back, `models.filters.pyramid_lowpass`): the layout, without the edges of the 8-16 px blocks that
                  the shipped (nearest-upsampling) generator draws without its texture head
                  (docs/realistic_fills.md, runs 69-70).
                  coarse_stage_layout a in (0, 1] replaces that share of the output's layout, its Laplacian pyramid's
                  16-px low-pass level (`LAYOUT_SIDE`, the realism metrics' coarsest level), by the coarse stage's:
                  out + a (lowpass(coarse fill) - lowpass(out)), the hole only. At 1 the first stage (e.g. one trained
                  for the layout alone) owns the layout and this stage draws the finer bands over it, trained on the
                  result (docs/realistic_fills.md, run 72); the swap is the pyramid's, so it is exact and costs two
                  low-passes.
    The first shipped model was pix2pix's generator: batch norm, transposed convolutions, no residual
    blocks, no harmonic start, no texture head.
    """

    def __init__(self, config: GeneratorConfig = GeneratorConfig(), context_network: nn.Module = None,
                 coarse_network: nn.Module = None):
        super().__init__()
        self.config = config
        image_size, ngf, norm, upsampling = config.image_size, config.ngf, config.norm, config.upsampling
        harmonic, texture_noise, in_channels = config.harmonic, config.texture_noise, 3
        depth = int(math.log2(image_size))
        self.image_size, self.ngf, self.depth, self.harmonic = image_size, ngf, depth, harmonic
        self.texture_noise = texture_noise
        widths = [min(2 ** i, 8) * ngf for i in range(depth)]

        self.down = nn.ModuleList()
        for i in range(depth):
            c_in = in_channels + 1 if i == 0 else widths[i - 1]
            layers = [] if i == 0 else [nn.LeakyReLU(0.2, inplace=True)]
            layers.append(nn.Conv2d(c_in, widths[i], 4, 2, 1, bias=False if 0 < i < depth - 1 else True))
            if 0 < i < depth - 1:  # no norm at the outermost level (raw pixels) nor on the 1x1 bottleneck
                layers.append(norm_layer(norm, widths[i]))
            self.down.append(nn.Sequential(*layers))

        # Dilated residual blocks on the S/16 feature map (level 3: 8 x 8 at 128^2), after its skip.
        self.context_level = min(3, depth - 2)
        self.context = nn.Sequential(*[DilatedResBlock(widths[self.context_level], 2 ** (k % 3), norm)
                                       for k in range(config.res_blocks)])

        self.up = nn.ModuleList()  # up[i] maps level i back to level i-1's resolution
        for i in range(depth):
            c_in = widths[i] if i == depth - 1 else 2 * widths[i]  # concat of up path and skip
            if i == 0:
                layers = [nn.ReLU(True), upsample_conv(c_in, in_channels, upsampling, bias=True)]
                if not harmonic:
                    layers.append(nn.Tanh())
            else:
                layers = [nn.ReLU(True), upsample_conv(c_in, widths[i - 1], upsampling, bias=False),
                          norm_layer(norm, widths[i - 1])]
                if config.dropout and i >= depth - 3:  # pix2pix's innermost three; no weights, keys unchanged
                    layers.append(nn.Dropout(config.dropout))
            self.up.append(nn.Sequential(*layers))
        # Contextual attention on the output of up[2]: the S/4 map (2 ngf channels), before its skip joins.
        self.attention = ContextualAttention(widths[1]) if config.attention else None
        # Texture head at S x S: (last decoder input upsampled (2 ngf), noise) -> 3 channels.
        self.texture = None
        if texture_noise:
            self.texture = nn.Sequential(
                nn.Conv2d(2 * widths[0] + texture_noise, ngf, 3, 1, 1), nn.LeakyReLU(0.2, True),
                nn.Conv2d(ngf, ngf, 3, 1, 1), nn.LeakyReLU(0.2, True), nn.Conv2d(ngf, in_channels, 3, 1, 1))
        # Exemplar texture at S x S, gated from the same upsampled decoder input (2 ngf channels).
        self.exemplar = ExemplarTexture(2 * widths[0], config.exemplar_guide, config.exemplar_normalise,
                                        config.exemplar_coarse, config.exemplar_prior) if config.exemplar else None
        # Per-channel noise strengths on the decoder's noise_injection finest maps (S/2, S/4, S/8: the outputs of
        # up[1], up[2], up[3]), zero at the start (StyleGAN; MI-GAN): grain appears only where training rewards it.
        self.noise_strength = nn.ParameterDict({
            str(i): nn.Parameter(torch.zeros(1, widths[i - 1], 1, 1)) for i in range(1, config.noise_injection + 1)
            if i < depth
        }) if config.noise_injection else None
        # Frozen ImageNet features of the start image, added to encoder levels 1-4 (S/4 ... S/32).
        self.pretrained_context = None
        if config.context_features:
            if context_network is None:
                raise ValueError("context_features needs the frozen feature network: pass context_network "
                                 "(utils.loading.build_generator loads EfficientNet-Lite0)")
            self.pretrained_context = PretrainedContext(context_network, widths[1:5], config.context_upsample)
        # The frozen first stage whose fill is the start (in place of the harmonic fill).
        self.coarse_stage = None
        if config.coarse_stage:
            if coarse_network is None:
                raise ValueError("coarse_stage needs the frozen first-stage generator: pass coarse_network "
                                 "(utils.loading.build_generator loads it from the file the config names)")
            self.freeze_part("coarse_stage", coarse_network)  # in eval mode always: the same fill in training
        init_weights(self, skip=nn.ModuleList([m for m in (self.attention, self.exemplar, self.pretrained_context,
                                                            self.coarse_stage) if m is not None]))
        if harmonic:  # zero residual at the start: the untrained model is the harmonic fill
            last = self.up[0][-1] if upsampling == "transpose" else self.up[0][-1][-1]
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)
        if self.texture is not None:  # an added head starts as a no-op
            nn.init.zeros_(self.texture[-1].weight)
            nn.init.zeros_(self.texture[-1].bias)

    def start_fill(self, masked: torch.Tensor, mask: torch.Tensor, coarse: torch.Tensor = None) -> torch.Tensor:
        """(B, 3, S, S) the fill the residual starts from: the coarse stage's (`coarse`, its fill when already
        computed), the harmonic fill (solved at <= 128 px: exact up to 128^2, far cheaper above, docs/speed.md), or
        the masked input itself (grey hole); no grad."""
        if self.coarse_stage is not None:
            with torch.no_grad():
                fill = self.coarse_stage(masked, mask) if coarse is None else coarse
                if self.config.coarse_stage_lowpass:
                    fill = keep_known(masked, mask, pyramid_lowpass(fill.float(), self.config.coarse_stage_lowpass))
                return fill.to(masked.dtype)
        if self.harmonic:
            return coarse_harmonic_fill(masked, mask, max_side=128, tol=1e-3)
        return masked

    def injected_noise(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, H, W) standard normal noise for a decoder map x (B, C, H, W): torch's global RNG in training
        (checkpoints store it), one pattern seeded by the map's size in eval (a fill does not depend on its batch)."""
        b, _, h, w = x.shape
        if self.training:
            return torch.randn((b, 1, h, w), device=x.device, dtype=x.dtype)
        generator = torch.Generator().manual_seed(h)
        return torch.randn((1, 1, h, w), generator=generator).to(x.device, x.dtype).expand(b, 1, h, w)

    def texture_noise_like(self, features: torch.Tensor) -> torch.Tensor:
        """(B, texture_noise, S, S) standard normal noise (see the class docstring for its RNG)."""
        b, _, h, w = features.shape
        shape = (b, self.texture_noise, 2 * h, 2 * w)
        if self.training:
            return torch.randn(shape, device=features.device, dtype=features.dtype)
        # One seeded pattern for every image of the batch: a fill does not depend on its batch neighbours.
        generator = torch.Generator().manual_seed(0)
        noise = torch.randn((1,) + shape[1:], generator=generator)
        return noise.to(features.device, features.dtype).expand(shape)

    def forward(self, masked: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        coarse = None
        if self.coarse_stage is not None:
            with torch.no_grad():
                coarse = self.coarse_stage(masked, mask)  # (B, 3, S, S): the first stage's whole fill
        start = self.start_fill(masked, mask, coarse)
        x = torch.cat([start, mask], dim=1)  # (B, 4, S, S)
        pretrained = self.pretrained_context(start) if self.pretrained_context is not None else []
        skips = []
        for level, block in enumerate(self.down):
            x = block(x)
            if 1 <= level <= len(pretrained):  # level i: (B, widths[i], S / 2^(i+1), S / 2^(i+1))
                x = x + pretrained[level - 1]
            if level == self.context_level:
                x = self.context(x)
            skips.append(x)
        x = self.up[-1](skips[-1])  # bottleneck (B, 8 ngf, 1, 1) -> (B, 8 ngf, 2, 2)
        for i in range(self.depth - 2, -1, -1):
            if i == 1 and self.attention is not None:  # x: (B, 2 ngf, S/4, S/4)
                x = self.attention(x, mask)
            features = torch.cat([x, skips[i]], dim=1)  # at i = 0: (B, 2 ngf, S/2, S/2)
            x = self.up[i](features)
            if self.noise_strength is not None and str(i) in self.noise_strength:
                x = x + self.noise_strength[str(i)].to(x.dtype) * self.injected_noise(x)
        unet = x  # the U-Net's residual, before the texture sources
        if self.texture is not None or self.exemplar is not None:
            up = nn.functional.interpolate(features, scale_factor=2,  # (B, 2 ngf, S, S)
                                           mode=RESIZE_MODES.get(self.config.upsampling, "nearest"))
        if self.texture is not None:
            x = x + self.texture(torch.cat([up, self.texture_noise_like(features)], dim=1))
        if self.exemplar is not None:  # patches drawn by the U-Net's fill before any texture (or at random)
            guide = None
            if self.exemplar.guide_temperature:
                guide = keep_known(masked, mask, add_residual(start, unet).detach())
            x = x + self.exemplar(masked, mask, up, guide)
        if self.harmonic:
            x = add_residual(start, x).to(x.dtype)
        # Keep the known pixels exactly: the network only decides the hole.
        out = keep_known(masked, mask, x)
        if self.config.coarse_stage_layout:
            out = self.take_layout(out, coarse, masked, mask)
        if self.config.detail_smoothing > 0:  # changes the hole only
            out = smooth_detail_amplitude(out, mask, self.config.detail_smoothing, self.config.detail_smoothing_bands)
        return out

    def take_layout(self, out: torch.Tensor, coarse: torch.Tensor, masked: torch.Tensor,
                    mask: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) `out` with coarse_stage_layout's share of its 16-px pyramid level replaced by the coarse
        fill's, in the hole: the pyramid's low-pass is linear, so swapping a level is adding the difference of
        the two low-passes (the finer bands keep what this stage drew, up to the filters' overlap)."""
        steps = int(math.log2(self.config.image_size // LAYOUT_SIDE))  # pyrDowns to the 16-px level: 3 at 128²
        layout = pyramid_lowpass(coarse.float(), steps) - pyramid_lowpass(out.float(), steps)
        return keep_known(masked, mask, out.float() + self.config.coarse_stage_layout * layout).to(out.dtype)


class MeanFill(nn.Module):
    """The mean of several trained generators' fills: (B, 3, S, S) masked input and (B, 1, S, S) mask to the
    per-pixel average of the members' outputs, the known pixels kept exactly.

    An ensemble, not a weight average: it works for unrelated runs (other widths, other starts), which averaging
    weights (tools/average_checkpoints.py) cannot combine. Its use is a layout stage (GeneratorConfig.coarse_stage):
    where each member's large-scale fill errs on its own, the mean of their layouts is nearer the truth's than any
    one (the variance term of the error shrinks; Breiman 1996, bagging), and the second stage draws the texture on
    it. Averaging blurs whatever the members disagree on, so it suits layout stages, not textured fills. Members
    must fill the same image size; `config` is the first member's (the size and what the callers read of it).
    """

    texture = None  # no grain of its own: a layout stage (utils.loading.load_coarse_stage turns members' grain off)

    def __init__(self, members: list):
        super().__init__()
        if len(members) < 2:
            raise ValueError(f"a mean of fills needs two or more generators, got {len(members)}")
        sizes = {member.config.image_size for member in members}
        if len(sizes) != 1:
            raise ValueError(f"the generators of a mean of fills must fill one image size, got {sorted(sizes)}")
        self.members = nn.ModuleList(members)

    @property
    def config(self) -> GeneratorConfig:
        return self.members[0].config

    def forward(self, masked: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        fills = torch.stack([member(masked, mask).float() for member in self.members])  # (M, B, 3, S, S)
        return keep_known(masked, mask, fills.mean(dim=0).to(masked.dtype))


def add_residual(start: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
    """The start (harmonic or coarse-stage fill) plus a residual in tanh-logit space, tanh(atanh(start) + r), in fp32."""
    return torch.tanh(torch.atanh(start.float().clamp(-0.999, 0.999)) + residual.float())


class PatchDiscriminator(nn.Module):
    """70x70 PatchGAN conditioned on the task input.

    (masked (B, 3, S, S), mask (B, 1, S, S), image (B, 3, S, S)) -> logits (B, 1, S/8 - 2, S/8 - 2),
    one real/fake logit per overlapping 70x70 patch.
    """

    def __init__(self, ndf: int = 64, n_layers: int = 3, in_channels: int = 3):
        super().__init__()
        c_in = 2 * in_channels + 1
        layers = [nn.Conv2d(c_in, ndf, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        width = ndf
        for n in range(1, n_layers + 1):
            prev, width = width, ndf * min(2 ** n, 8)
            stride = 1 if n == n_layers else 2
            layers += [nn.Conv2d(prev, width, 4, stride, 1, bias=False), nn.BatchNorm2d(width),
                       nn.LeakyReLU(0.2, True)]
        layers.append(nn.Conv2d(width, 1, 4, 1, 1))
        self.net = nn.Sequential(*layers)
        init_weights(self)

    def forward(self, masked: torch.Tensor, mask: torch.Tensor, image: torch.Tensor, return_features: bool = False):
        """Logits, or (logits, [activations after each LeakyReLU]) for feature matching."""
        x = torch.cat([masked, mask, image], dim=1)
        if not return_features:
            return self.net(x)
        features = []
        for layer in self.net:
            x = layer(x)
            if isinstance(layer, nn.LeakyReLU):
                features.append(x)
        return x, features


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())

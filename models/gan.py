"""U-Net generator and PatchGAN discriminator for gap filling (pix2pix architecture).

Architecture after Isola et al., "Image-to-Image Translation with Conditional Adversarial
Networks" (pix2pix, 2017): `unet_256` (8 stride-2 levels with skip connections, BatchNorm, tanh)
and the 70x70 `NLayerDiscriminator` (n_layers=3). Differences, both for the gap task:
  * the generator also receives the mask as a 4th input channel (1 = generate), and its output
    keeps the known pixels of the input exactly (out = mask * G(x) + (1 - mask) * x);
  * the depth adapts to the input size: log2(S) levels, so the bottleneck is always 1x1
    (8 at 256^2, 6 at 64^2).
"""
import math

import torch
import torch.nn as nn


def init_weights(module: nn.Module, gain: float = 0.02) -> None:
    """pix2pix init: conv weights ~ N(0, 0.02), BatchNorm weights ~ N(1, 0.02), biases 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, gain)
            nn.init.zeros_(m.bias)


class UNetGenerator(nn.Module):
    """U-Net: (masked image (B, 3, S, S), mask (B, 1, S, S)) -> completed image (B, 3, S, S) in [-1, 1].

    Level i (0 = outermost) has min(2^i, 8) * ngf channels at resolution S / 2^(i+1).
    """

    def __init__(self, image_size: int = 256, ngf: int = 64, in_channels: int = 3, dropout: float = 0.0):
        super().__init__()
        depth = int(math.log2(image_size))
        if 2 ** depth != image_size or depth < 3:
            raise ValueError(f"image_size must be a power of two >= 8, got {image_size}")
        self.image_size, self.ngf, self.depth = image_size, ngf, depth
        widths = [min(2 ** i, 8) * ngf for i in range(depth)]

        self.down = nn.ModuleList()
        for i in range(depth):
            c_in = in_channels + 1 if i == 0 else widths[i - 1]
            layers = [] if i == 0 else [nn.LeakyReLU(0.2, inplace=True)]
            layers.append(nn.Conv2d(c_in, widths[i], 4, 2, 1, bias=False if 0 < i < depth - 1 else True))
            if 0 < i < depth - 1:  # no norm at the outermost level (raw pixels) nor on the 1x1 bottleneck
                layers.append(nn.BatchNorm2d(widths[i]))
            self.down.append(nn.Sequential(*layers))

        self.up = nn.ModuleList()  # up[i] maps level i back to level i-1's resolution
        for i in range(depth):
            c_in = widths[i] if i == depth - 1 else 2 * widths[i]  # concat of up path and skip
            if i == 0:
                layers = [nn.ReLU(True), nn.ConvTranspose2d(c_in, in_channels, 4, 2, 1), nn.Tanh()]
            else:
                layers = [nn.ReLU(True), nn.ConvTranspose2d(c_in, widths[i - 1], 4, 2, 1, bias=False),
                          nn.BatchNorm2d(widths[i - 1])]
                if dropout > 0 and i >= depth - 3:  # pix2pix puts dropout on the 3 innermost decoders
                    layers.append(nn.Dropout(dropout))
            self.up.append(nn.Sequential(*layers))
        init_weights(self)

    def forward(self, masked: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = torch.cat([masked, mask], dim=1)  # (B, 4, S, S)
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
        x = self.up[-1](skips[-1])  # bottleneck (B, 8 ngf, 1, 1) -> (B, 8 ngf, 2, 2)
        for i in range(self.depth - 2, -1, -1):
            x = self.up[i](torch.cat([x, skips[i]], dim=1))
        # Keep the known pixels exactly: the network only decides the hole.
        return mask * x + (1.0 - mask) * masked


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

    def forward(self, masked: torch.Tensor, mask: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([masked, mask, image], dim=1))


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())

"""Image filters shared by the models' layers (plain functions on tensors, no state)."""
import math

import torch
import torch.nn.functional as F


def separable_gaussian(x: torch.Tensor, sigma: float, radius_sigmas: float, padding: str) -> torch.Tensor:
    """Gaussian blur of x (B, C, H, W): a normalised 1-D kernel of radius max(1, ceil(radius_sigmas * sigma)),
    applied along the width, then the height; `padding` is F.pad's mode ("reflect", or "constant" for zeros).
    Differentiable; the kernel is in x's dtype."""
    radius = max(1, math.ceil(radius_sigmas * sigma))
    t = torch.arange(-radius, radius + 1, device=x.device, dtype=torch.float32)
    kernel = torch.exp(-0.5 * (t / sigma) ** 2)
    kernel = (kernel / kernel.sum()).to(x.dtype)
    c = x.shape[1]
    out = F.conv2d(F.pad(x, (radius, radius, 0, 0), mode=padding), kernel.view(1, 1, 1, -1).expand(c, 1, 1, -1),
                   groups=c)
    return F.conv2d(F.pad(out, (0, 0, radius, radius), mode=padding), kernel.view(1, 1, -1, 1).expand(c, 1, -1, 1),
                    groups=c)

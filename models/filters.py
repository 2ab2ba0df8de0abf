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


# OpenCV's image pyramid (cv2.pyrDown / cv2.pyrUp): the realism metrics' bands (utils/realism.py) and the
# coarse layout loss (losses.pyramid_hole_mse) use the same filters and the same hole at each level.
_PYR_TAPS = (1.0, 4.0, 6.0, 4.0, 1.0)


def _pyr_kernel(x: torch.Tensor) -> torch.Tensor:
    k = torch.tensor(_PYR_TAPS, dtype=torch.float32, device=x.device)
    return (k[:, None] * k[None, :] / 256.0).expand(x.shape[1], 1, 5, 5)


def pyr_down(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, ceil(H/2), ceil(W/2)): Gaussian 5x5 blur, then every second pixel (cv2.pyrDown)."""
    x = x.float()
    blurred = F.conv2d(F.pad(x, (2, 2, 2, 2), mode="reflect"), _pyr_kernel(x), groups=x.shape[1])
    return blurred[..., ::2, ::2]


def pyr_up(x: torch.Tensor, size) -> torch.Tensor:
    """(B, C, h, w) -> (B, C, *size): zeros between the pixels, then the 5x5 kernel x 4 (cv2.pyrUp)."""
    x = x.float()
    b, c, h, w = x.shape
    up = x.new_zeros(b, c, size[0], size[1])
    up[..., ::2, ::2] = x[..., : (size[0] + 1) // 2, : (size[1] + 1) // 2]
    return F.conv2d(F.pad(up, (2, 2, 2, 2), mode="reflect"), 4 * _pyr_kernel(x), groups=c)


def laplacian_pyramid(x: torch.Tensor, min_side: int = 16) -> list:
    """[band at S, band at S/2, ..., low-pass residual at ~min_side]: the finer levels are x - pyrUp(pyrDown(x)),
    the last the Gaussian level itself (S = 128, min_side 16: levels at 128, 64, 32, 16 px)."""
    levels = []
    while x.shape[-1] > min_side:
        down = pyr_down(x)
        levels.append(x.float() - pyr_up(down, x.shape[-2:]))
        x = down
    return levels + [x.float()]


def collapse_laplacian(levels: list) -> torch.Tensor:
    """The inverse of `laplacian_pyramid`: from the low-pass residual up, pyrUp to the next band's size and add
    the band. collapse_laplacian(laplacian_pyramid(x)) == x up to float rounding; zeroing or scaling a band
    before collapsing removes or scales that scale of detail alone."""
    x = levels[-1]
    for band in reversed(levels[:-1]):
        x = pyr_up(x, band.shape[-2:]) + band
    return x


def level_masks(mask: torch.Tensor, count: int) -> list:
    """The hole at each pyramid level: a coarse pixel is hole when all of its fine pixels are (a min-pool)."""
    masks = [mask.float()]
    for _ in range(count - 1):
        m = masks[-1]
        if m.shape[-1] % 2 or m.shape[-2] % 2:  # pyrDown's ceil: an odd last row/column counts as not hole
            m = F.pad(m, (0, m.shape[-1] % 2, 0, m.shape[-2] % 2))
        masks.append(-F.max_pool2d(-m, 2))
    return masks

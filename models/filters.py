"""Image filters shared by the models' layers, the losses and the realism metrics (plain functions on tensors, no
state): Gaussian blur, OpenCV's image pyramid, the 8x8 blocks' detail, and the detail-amplitude smoothing that a
generator may apply to its fill (`smooth_detail_amplitude`)."""
import math

import torch
import torch.nn.functional as F

from utils.images import luma


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


def down_with_hole(x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor, steps: int) -> tuple:
    """(x, y, hole) after `steps` pyrDowns of x and y (B, C, H, W), in float32, the hole at that size being
    `level_masks`' (the coarse pixels all of whose fine pixels are hole): the level that the layout's metric and
    losses compare (`level_hole_mse`, losses.pyramid_hole_mse)."""
    x, y = x.float(), y.float()
    for _ in range(steps):
        x, y = pyr_down(x), pyr_down(y)
    return x, y, level_masks(mask, steps + 1)[-1]


def level_hole_mse(x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor, steps: int) -> torch.Tensor:
    """Per image, the mean squared error of x and y (B, C, H, W) over the hole after `steps` pyrDowns of both
    (`down_with_hole`): (B,), in float32. What the low-pass hole PSNR (utils.realism) and the layout loss in dB
    (losses.pyramid_hole_db) both compare."""
    x, y, hole = down_with_hole(x, y, mask, steps)
    return ((x - y).square() * hole).sum(dim=(1, 2, 3)) / (hole.sum(dim=(1, 2, 3)) * x.shape[1]).clamp_min(1.0)


def pyramid_lowpass(x: torch.Tensor, levels: int) -> torch.Tensor:
    """(B, C, H, W) -> the same size: `levels` pyrDowns, then pyrUps back through the same sizes (its content
    below 1 / 2^levels of its size; levels 2: what the low-pass hole PSNR compares)."""
    sizes = [x.shape[-2:]]
    small = x
    for _ in range(levels):
        small = pyr_down(small)
        sizes.append(small.shape[-2:])
    for size in reversed(sizes[:-1]):
        small = pyr_up(small, tuple(size))
    return small


_LAPLACIAN = ((0.0, 1.0, 0.0), (1.0, -4.0, 1.0), (0.0, 1.0, 0.0))


def abs_laplacian(x: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) -> (B, 1, H, W) |4-neighbour Laplacian| of the grey image (borders replicated), in fp32."""
    grey = luma(x)[:, None].float()
    kernel = torch.tensor(_LAPLACIAN, device=x.device).view(1, 1, 3, 3)
    return F.conv2d(F.pad(grey, (1, 1, 1, 1), mode="replicate"), kernel).abs()


def block_detail(x: torch.Tensor, mask: torch.Tensor, block: int = 8) -> tuple:
    """(B, S/8, S/8) mean |4-neighbour Laplacian| of the grey image per 8x8 block, and (B, S/8, S/8) bool: the
    blocks wholly inside the hole. x in [0, 1]. The detail placement metric (utils/realism.py) correlates it."""
    inside = (-F.max_pool2d(-mask.float(), block))[:, 0] > 0.5
    return F.avg_pool2d(abs_laplacian(x), block)[:, 0], inside


def smooth_detail_amplitude(image: torch.Tensor, mask: torch.Tensor, sigma: float, bands: int = 1,
                            max_gain: float = 2.0, block: int = 8) -> torch.Tensor:
    """Even out a fill's detail amplitude across its `block`-px blocks; the known pixels are left as they are.

    image (B, 3, S, S) in [-1, 1], mask (B, 1, S, S), 1 = hole; sigma in blocks (0: image unchanged). The hole's
    mean |Laplacian| per block (over its hole pixels, as `block_detail`), smoothed with a Gaussian of `sigma`
    blocks weighted by each block's hole share, over its own value is a gain per block, clamped to
    [1 / max_gain, max_gain] and upsampled bilinearly (no block seams); the image's `bands` finest Laplacian bands
    (image - pyramid_lowpass(image, bands)) are multiplied by it inside the hole. Why: the generator decides where
    texture goes (its U-Net), but how strong it is from block to block also carries the noise of the texture it
    draws; a smoothed map of it is a better guess of where the scene has detail (docs/realistic_fills.md, "Smoothing
    the detail amplitude"), and the layout below the bands is untouched. The gain is a constant for gradients."""
    if sigma <= 0:
        return image
    x, hole = image.float(), mask.float()
    with torch.no_grad():
        share = F.avg_pool2d(hole, block)  # (B, 1, S/b, S/b): each block's hole share
        energy = F.avg_pool2d(abs_laplacian(x) * hole, block) / share.clamp_min(1e-6)
        smoothed = (separable_gaussian(energy * share, sigma, 3.0, "replicate")
                    / separable_gaussian(share, sigma, 3.0, "replicate").clamp_min(1e-6))
        gain = (smoothed / energy.clamp_min(1e-6)).clamp(1 / max_gain, max_gain)
        gain = torch.where(share > 0, gain, torch.ones_like(gain))
        gain = F.interpolate(gain, size=x.shape[-2:], mode="bilinear", align_corners=False)
    detail = x - pyramid_lowpass(x, bands)
    return (x + hole * (gain - 1) * detail).clamp(-1, 1).to(image.dtype)

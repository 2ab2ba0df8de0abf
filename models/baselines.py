"""Training-free fills, used as floors in the model card and the comparison.

All take and return tensors in the project's convention: masked (B, 3, S, S) in [-1, 1] with the
hole zeroed, mask (B, 1, S, S) with 1 = generate; the known pixels are kept exactly.
"""
import functools

import cv2
import numpy as np
import torch

from data.masks import keep_known
from models.harmonic import harmonic_fill


def mean_colour_fill(masked: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Fill the hole with the mean colour of the known pixels of each image."""
    known = 1.0 - mask
    mean = (masked * known).sum(dim=(2, 3), keepdim=True) / known.sum(dim=(2, 3), keepdim=True).clamp_min(1)
    return keep_known(masked, mask, mean.expand_as(masked))


def telea_fill(masked: torch.Tensor, mask: torch.Tensor, radius: int = 5) -> torch.Tensor:
    """Classical inpainting: OpenCV's fast marching method (Telea, 2004), image by image."""
    outs = []
    for image, m in zip(masked, mask):
        hole = (m[0].cpu().numpy() > 0.5).astype(np.uint8) * 255
        filled = cv2.inpaint(_to_rgb8(image), hole, radius, cv2.INPAINT_TELEA)
        outs.append(torch.from_numpy(filled).permute(2, 0, 1).float() / 127.5 - 1.0)
    return keep_known(masked, mask, torch.stack(outs).to(masked))


def _to_rgb8(image: torch.Tensor) -> np.ndarray:
    """(3, S, S) in [-1, 1] -> contiguous (S, S, 3) uint8."""
    return np.ascontiguousarray(((image.permute(1, 2, 0).cpu().numpy() + 1.0) * 127.5).round().clip(0, 255)
                                .astype(np.uint8))


def xphoto_fill(masked: torch.Tensor, mask: torch.Tensor, method: str) -> torch.Tensor:
    """OpenCV contrib's `cv2.xphoto.inpaint` (opencv-contrib-python-headless), image by image.

    method "shiftmap": exemplar-based (He & Sun 2012, "Statistics of Patch Offsets for Image Completion"):
    the hole is tiled with shifted copies of the known pixels, so it has a photograph's texture but not
    necessarily the right layout; "fsr": frequency-selective reconstruction (Seiler et al. 2015; the fast
    variant), a smooth-to-textured fill from the known pixels' spectrum.
    """
    if not hasattr(cv2, "xphoto"):
        raise RuntimeError("the shiftmap and fsr fills need OpenCV's contrib modules: "
                           "pip install opencv-contrib-python-headless (in place of opencv-python-headless)")
    flag = {"shiftmap": cv2.xphoto.INPAINT_SHIFTMAP, "fsr": cv2.xphoto.INPAINT_FSR_FAST}[method]
    outs = []
    for image, m in zip(masked, mask):
        known = (m[0].cpu().numpy() < 0.5).astype(np.uint8) * 255  # xphoto's mask: non-zero = valid pixel
        filled = np.zeros_like(_to_rgb8(image))
        cv2.xphoto.inpaint(_to_rgb8(image), known, filled, flag)
        outs.append(torch.from_numpy(filled).permute(2, 0, 1).float() / 127.5 - 1.0)
    return keep_known(masked, mask, torch.stack(outs).to(masked))


def harmonic_baseline(masked: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Laplace's equation in the hole, the known pixels as boundary (models/harmonic.py), solved to
    a relative residual of 1e-5 (within 1e-4 of the exact solution: far below one 8-bit level)."""
    return harmonic_fill(masked, mask, tol=1e-5)


BASELINES = {"mean": mean_colour_fill, "telea": telea_fill, "harmonic": harmonic_baseline,
             "shiftmap": functools.partial(xphoto_fill, method="shiftmap"),
             "fsr": functools.partial(xphoto_fill, method="fsr")}

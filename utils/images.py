"""Writing images atomically (format from the extension), and input | output | truth grids."""
from pathlib import Path

import torch
from PIL import Image

from utils.errors import InputError
from utils.files import atomic_write

# Extension -> (Pillow format, save options). PNG is lossless; JPEG and WebP at quality 95.
IMAGE_FORMATS = {".png": ("PNG", {}), ".jpg": ("JPEG", {"quality": 95}), ".jpeg": ("JPEG", {"quality": 95}),
                 ".webp": ("WEBP", {"quality": 95})}
LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601: the grey level of the realism metrics and of the colour jitter


def luma(x: torch.Tensor) -> torch.Tensor:
    """(..., 3, H, W) -> (..., H, W): the grey level, ITU-R BT.601 weights (`LUMA`)."""
    return sum(w * x[..., c, :, :] for c, w in enumerate(LUMA))


def to_float(image_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 (..., 3, H, W) -> float32 in [-1, 1]."""
    return image_uint8.float() / 127.5 - 1.0


def to_uint8(image: torch.Tensor) -> torch.Tensor:
    """float in [-1, 1] -> uint8, rounded so that to_uint8(to_float(x)) == x exactly."""
    return ((image.detach().float().clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8)


def image_format(path, flag: str = None) -> tuple:
    """(Pillow format, options) for the file's extension, or InputError listing the supported ones."""
    suffix = Path(path).suffix.lower()
    if suffix not in IMAGE_FORMATS:
        where = f"{flag} {path}" if flag else str(path)
        raise InputError(f"{where}: cannot tell the image format from {suffix or 'a name without extension'!r}; "
                         "end the name with .png, .jpg, .jpeg or .webp")
    return IMAGE_FORMATS[suffix]


def save_image(image: torch.Tensor, path, flag: str = None) -> Path:
    """Save a float (3, H, W) image in [-1, 1] in the format of the path's extension, atomically."""
    fmt, options = image_format(path, flag)
    array = to_uint8(image).permute(1, 2, 0).cpu().numpy()
    return atomic_write(path, lambda tmp: Image.fromarray(array).save(tmp, format=fmt, **options), flag)


save_png = save_image  # the project's own outputs are .png files


def save_grid(columns, path, max_rows: int = 8) -> Path:
    """One row per image, one column per tensor in `columns` (each (B, 3, S, S) in [-1, 1])."""
    rows = [torch.cat([c[i].float().cpu() for c in columns], dim=-1) for i in range(min(max_rows, len(columns[0])))]
    return save_image(torch.cat(rows, dim=-2), path)

"""Opening image files: one rule for every photo the project reads, without torch.

The command lines check their photos with these functions before torch is imported, so a bad file is
refused in well under a second; `data/datasets.py` turns the opened images into tensors.
"""
import contextlib
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from utils.errors import InputError

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}
SUPPORTED_SIZES = (64, 128, 256, 512)
# One rule for every photo the project opens (CLI, eval folders, training data, the web page, repainting):
# decided from the file's header, before any pixel is decoded.
MAX_PIXELS = 40_000_000  # a 6000 x 6000 photo; a decompression bomb is refused, not decoded
MIN_SIDE = 16  # a square of the gap task must be taken from every photo


def check_image_size(image_size: int) -> int:
    """Return `image_size` if the U-Net supports it, else raise InputError."""
    if image_size not in SUPPORTED_SIZES:
        raise InputError(f"--image_size must be a power of two in {SUPPORTED_SIZES}, got {image_size}")
    return image_size


@contextlib.contextmanager
def open_checked(path, max_pixels: int = MAX_PIXELS, min_side: int = MIN_SIDE, name: str = None):
    """`with open_checked(path) as im:` a PIL image whose size passed the checks, its pixels not decoded yet.

    The size comes from the header: over `max_pixels` (a decompression bomb among them) or under `min_side`
    pixels on a side, the file is refused before its pixels are decoded. Every failure is an InputError
    naming the file (`name`, default its path), also one raised while decoding inside the block.
    """
    path = Path(path)
    name = name or str(path)
    if path.is_dir():
        raise InputError(f"{path} is a folder, not an image file: pass one photo (.jpg, .png, .webp, ...)")
    if not path.is_file():
        raise InputError(f"image not found: {path}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit decides, below
            with Image.open(path) as im:
                check_image_dimensions(im.size, name, max_pixels, min_side)
                yield im
    except InputError:
        raise
    except Image.DecompressionBombError:  # more pixels than Pillow opens at all: far over our limit
        raise InputError(f"{name} has more than {2 * Image.MAX_IMAGE_PIXELS // 10 ** 6} megapixels, over the "
                         f"{max_pixels // 10 ** 6}-megapixel limit for a photo: resize it first") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise InputError(f"cannot read image {name}: {exc}") from None


def check_image_file(path, max_pixels: int = MAX_PIXELS, min_side: int = MIN_SIDE, name: str = None) -> None:
    """InputError unless `path` is an image file within the limits, read from its header only (milliseconds)."""
    with open_checked(path, max_pixels, min_side, name):
        pass


def load_image(path, max_pixels: int = MAX_PIXELS, min_side: int = MIN_SIDE, draft_side: int = None,
               name: str = None) -> Image.Image:
    """Open any supported file as an upright 8-bit RGB image, or raise InputError naming the file.

    The limits are `open_checked`'s, decided before decoding. With `draft_side`, a JPEG at least twice that
    size is decoded at a reduced scale that keeps at least that many pixels on the shorter side (libjpeg's
    DCT scaling: a 12000 x 12000 photo for a 410 px output is decoded at 3000 x 3000). Handles EXIF
    rotation, grayscale, 16-bit grayscale (scaled, not clipped), palette and alpha (composited on white so
    transparent pixels do not show whatever colour they stored). `name`: how messages call the file
    (default: its path).
    """
    with open_checked(path, max_pixels, min_side, name) as im:
        if draft_side and im.format == "JPEG" and min(im.size) >= 2 * draft_side:
            scale = min(im.size) / draft_side
            im.draft("RGB", (max(1, int(im.size[0] / scale)), max(1, int(im.size[1] / scale))))
        im.load()
        im = ImageOps.exif_transpose(im)
    if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # Pillow's convert('L') clips 16-bit values at 255; rescale by the real bit depth instead.
        arr = np.asarray(im).astype(np.float64)
        peak = 65535.0 if arr.max() > 255 else 255.0
        im = Image.fromarray(np.clip(arr / peak * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    if im.mode == "P":
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "LA", "PA"):
        rgba = im.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        im = Image.alpha_composite(background, rgba)
    return im.convert("RGB")


def check_image_dimensions(size, name, max_pixels: int = MAX_PIXELS, min_side: int = MIN_SIDE) -> None:
    """InputError naming the file when a (width, height) is over `max_pixels` or under `min_side` on a side."""
    width, height = size
    if width * height > max_pixels:
        raise InputError(f"{name} is {width}x{height} ({width * height / 1e6:.0f} megapixels): over the "
                         f"{max_pixels // 10 ** 6}-megapixel limit for a photo; resize it first")
    if min(width, height) < min_side:
        raise InputError(f"{name} is {width}x{height}: too small to take a square from ({min_side} px at least)")


def list_images(root) -> list:
    """Sorted image files under `root` (recursive); InputError if the folder is missing or empty."""
    root = Path(root)
    if root.is_file():
        raise InputError(f"{root} is a file, not a folder: pass the folder that holds the images")
    if not root.is_dir():
        raise InputError(f"folder not found: {root} (pass an existing folder of images)")
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise InputError(f"no images ({', '.join(sorted(IMAGE_EXTENSIONS))}) found under {root}")
    return files


def image_name(path: Path, root: Path) -> str:
    """Unique, filesystem-safe name: the path under `root` without suffix, '/' -> '_'."""
    return "_".join(path.relative_to(root).with_suffix("").parts)

"""Image-folder datasets for gap filling: robust loading, decode-once cache, train/eval transforms.

Every image is returned as a float tensor (3, S, S) in [-1, 1] with its mask (1, S, S), 1 = generate
(see `data/masks.py`).
"""
import math
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import Dataset

from data.images import MAX_PIXELS, check_image_size, image_name, list_images, load_image
from data.masks import apply_mask, gap_mask, make_train_mask
from utils.errors import InputError
from utils.images import luma, to_float


def pil_to_tensor(im: Image.Image) -> torch.Tensor:
    """PIL RGB -> uint8 tensor (3, H, W)."""
    return torch.from_numpy(np.array(im, dtype=np.uint8, copy=True)).permute(2, 0, 1).contiguous()


def resize_short_side(image: torch.Tensor, short: int) -> torch.Tensor:
    """uint8 (3, H, W) -> uint8 with min(H, W) == short (antialiased bicubic)."""
    h, w = image.shape[-2:]
    scale = short / min(h, w)
    size = (max(short, round(h * scale)), max(short, round(w * scale)))
    out = F.interpolate(image[None].float(), size=size, mode="bicubic", antialias=True, align_corners=False)
    return out[0].round().clamp(0, 255).to(torch.uint8)


def center_crop(image: torch.Tensor, size: int) -> torch.Tensor:
    h, w = image.shape[-2:]
    top, left = (h - size) // 2, (w - size) // 2
    return image[..., top:top + size, left:left + size]


def eval_transform(im: Image.Image, image_size: int) -> torch.Tensor:
    """PIL image -> uint8 (3, S, S): resize the shorter side to S, centre-crop."""
    return center_crop(resize_short_side(pil_to_tensor(im), image_size), image_size)


def jitter_colors(image: torch.Tensor, strength: float) -> torch.Tensor:
    """uint8 (3, H, W) -> uint8 (3, H, W) with its brightness, contrast and saturation scaled, in that order, by
    random factors in [1 - strength, 1 + strength] (one draw of three from torch's RNG): torchvision's ColorJitter
    without the hue. The crop's colours change together, so its layout stays a photograph's layout; a model that
    predicts the hole's colours from the known squares sees more palettes than its photos have."""
    factors = 1 + strength * (2 * torch.rand(3) - 1)
    x = image.float() * factors[0]
    grey = luma(x)  # (H, W)
    x = grey.mean() + factors[1] * (x - grey.mean())  # contrast about the crop's mean grey level
    grey = luma(x)
    x = grey + factors[2] * (x - grey)  # saturation: towards (< 1) or away from the pixel's own grey
    return x.round().clamp(0, 255).to(torch.uint8)


def load_eval_image(path, image_size: int) -> torch.Tensor:
    """File -> float (3, S, S) in [-1, 1], as the eval modes see it."""
    return to_float(eval_transform(load_image(path), image_size))


class ImageFolderDataset(Dataset):
    """Images under a folder, decoded once and kept in memory when they fit.

    train=True: random scale (a square crop whose side is `min_crop_scale` to 100 % of the photo's
    shorter side, resized to S; 0.8 by default, 0.3 gives both wide views and detail) + random
    horizontal flip, an optional colour jitter (`color_jitter`, see `jitter_colors`), and a random mask from
    `mask_kinds`; every random draw comes from torch's RNG so that checkpoints that
    store it resume exactly. train=False: resize + centre crop, gap mask. Unreadable files are
    skipped with a warning that names them. `repeat` makes one epoch several passes (for small folders).
    """

    MIN_CROP_SCALE = 0.8

    def __init__(self, root, image_size: int, crop_ratio: float, train: bool, mask_kinds=("gap",),
                 repeat: int = 1, cache_limit_gb: float = 4.0, show_progress: bool = False,
                 min_crop_scale: float = MIN_CROP_SCALE, max_pixels: int = MAX_PIXELS, color_jitter: float = 0.0):
        self.max_pixels = max_pixels  # larger photos are skipped with a warning, like unreadable ones
        if not 0.0 < min_crop_scale <= 1.0:
            raise InputError(f"--min_crop_scale must be in (0, 1], got {min_crop_scale}")
        if not 0.0 <= color_jitter < 1.0:
            raise InputError(f"--color_jitter must be in [0, 1) (0: off; 0.2: factors in [0.8, 1.2]), got {color_jitter}")
        self.color_jitter = color_jitter
        # Training feeds the U-Net, which needs a supported size; eval images may have any size (--output_size).
        self.root, self.image_size, self.crop_ratio = Path(root), check_image_size(image_size) if train else \
            int(image_size), crop_ratio
        self.train, self.mask_kinds, self.repeat = train, tuple(mask_kinds), max(1, int(repeat))
        self.files = list_images(self.root)
        # Decoded images are stored already reduced to what the transform needs (short side
        # S / min_crop_scale for training, so that the smallest crop still has S pixels; the S x S
        # crop for eval): 256-px training at the default scale keeps ~250 KB/image.
        self.min_crop_scale = min_crop_scale
        self.stored_short_side = math.ceil(image_size / min_crop_scale) if train else image_size
        estimated_bytes = len(self.files) * 3 * self.stored_short_side ** 2 * (1.5 if train else 1.0)
        self.cache = estimated_bytes <= cache_limit_gb * 2 ** 30
        self.images = [None] * len(self.files)
        if self.cache:
            kept_files, kept = [], []
            for path in _maybe_tqdm(self.files, show_progress, f"decoding {self.root}"):
                image = self._decode(path)
                if image is not None:
                    kept_files.append(path)
                    kept.append(image)
            self.files, self.images = kept_files, kept
            if not self.files:
                raise InputError(f"none of the images under {self.root} could be read")
        self.names = [image_name(p, self.root) for p in self.files]

    def _decode(self, path: Path):
        """uint8 tensor ready for the transform, or None (with a warning) if unreadable."""
        try:
            image = pil_to_tensor(load_image(path, max_pixels=self.max_pixels))
        except InputError as exc:
            warnings.warn(f"skipping unreadable image: {exc}", stacklevel=2)
            return None
        if self.train:
            return resize_short_side(image, self.stored_short_side)
        return center_crop(resize_short_side(image, self.image_size), self.image_size)

    def __len__(self):
        return len(self.files) * self.repeat

    def _get_stored(self, index: int) -> torch.Tensor:
        if self.cache:
            return self.images[index]
        for offset in range(len(self.files)):  # lazy mode: fall through unreadable files
            image = self._decode(self.files[(index + offset) % len(self.files)])
            if image is not None:
                return image
        raise InputError(f"none of the images under {self.root} could be read")

    def _random_crop(self, image: torch.Tensor) -> torch.Tensor:
        s = self.image_size
        h, w = image.shape[-2:]
        short = min(h, w)
        side = int(torch.randint(max(1, round(self.min_crop_scale * short)), short + 1, ()).item())
        top = int(torch.randint(0, h - side + 1, ()).item())
        left = int(torch.randint(0, w - side + 1, ()).item())
        crop = image[:, top:top + side, left:left + side]
        if side != s:
            crop = F.interpolate(crop[None].float(), size=(s, s), mode="bilinear", antialias=True,
                                 align_corners=False)[0].round().clamp(0, 255).to(torch.uint8)
        if torch.rand(()) < 0.5:
            crop = crop.flip(-1)
        return crop

    def __getitem__(self, index: int) -> dict:
        index = index % len(self.files)
        image = self._get_stored(index)
        if self.train:
            image = self._random_crop(image)
            if self.color_jitter:  # no draw when off: the crops and masks of earlier runs stay the same
                image = jitter_colors(image, self.color_jitter)
            rng = np.random.default_rng(int(torch.randint(0, 2 ** 62, ()).item()))
            mask = torch.from_numpy(make_train_mask(self.image_size, self.crop_ratio, self.mask_kinds, rng))[None]
        else:
            mask = gap_mask(self.image_size, self.crop_ratio)
        return {"image": to_float(image), "mask": mask, "name": self.names[index]}


def _maybe_tqdm(items, enabled: bool, desc: str):
    if not enabled:
        return items
    from tqdm.auto import tqdm
    return tqdm(items, desc=desc, leave=False)


def masked_batches(dataset, indices, batch_size: int):
    """The items of `dataset` at `indices`, in order, `batch_size` at a time: per batch (truth (B, 3, S, S), mask
    (B, 1, S, S), masked = the truth with the hole blanked), as the scoring probes feed a fill."""
    indices = list(indices)
    for start in range(0, len(indices), batch_size):
        items = [dataset[i] for i in indices[start:start + batch_size]]
        truth = torch.stack([item["image"] for item in items])
        mask = torch.stack([item["mask"] for item in items])
        yield truth, mask, apply_mask(truth, mask)

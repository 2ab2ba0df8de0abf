"""Writing images: lossless PNGs written atomically, and input | output | truth grids."""
import os
import tempfile
from pathlib import Path

import torch
from PIL import Image

from data.datasets import to_uint8


def save_png(image: torch.Tensor, path) -> Path:
    """Save a float (3, H, W) image in [-1, 1] as PNG via temp file + rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    array = to_uint8(image).permute(1, 2, 0).cpu().numpy()
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".png", dir=path.parent)
    os.close(fd)
    try:
        Image.fromarray(array).save(tmp, format="PNG")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def save_grid(columns, path, max_rows: int = 8) -> Path:
    """One row per image, one column per tensor in `columns` (each (B, 3, S, S) in [-1, 1])."""
    rows = [torch.cat([c[i].float().cpu() for c in columns], dim=-1) for i in range(min(max_rows, len(columns[0])))]
    return save_png(torch.cat(rows, dim=-2), path)

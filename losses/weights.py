"""Finding pretrained weights offline (VGG19, AlexNet for LPIPS, Inception for FID).

Nothing here downloads: the hub is unreachable on our machines and CI, so a missing file is
reported with the place to put it instead.
"""
import os
from pathlib import Path

import torch


def find_torchvision_weights(url: str, explicit_path=None, flag: str = None):
    """(path, None) if the weights file exists, else (None, reason saying where to put it).

    `explicit_path` (a flag's value) wins; otherwise torchvision's cache,
    $TORCH_HOME/hub/checkpoints/<file name of url>, is used, as torchvision itself would.
    """
    if explicit_path:
        path = Path(explicit_path)
        if path.is_file():
            return path, None
        return None, f"{flag or 'weights'} file not found: {path}"
    path = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)
    if path.is_file():
        return path, None
    hint = f" or pass {flag} PATH" if flag else ""
    return None, (f"pretrained weights not found at {path} (no download is attempted); "
                  f"copy {url} there{hint}")

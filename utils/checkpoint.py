"""Self-describing checkpoints: config + state, written atomically, loaded with weights_only=True.

Every checkpoint is a dict with at least
    "kind":   what it holds, e.g. "gan" (full training state) or "gan_generator" (export),
    "config": the plain-Python config (architecture, image size, crop ratio, ...) that rebuilds
              the model, so eval and filling need only the checkpoint path.
"""
import io
import zipfile
from pathlib import Path

import torch

from utils.errors import InputError
from utils.files import atomic_write, check_checkpoint_path


def save_checkpoint(state: dict, path, compress: bool = False) -> Path:
    """torch.save to a temp file in the same folder, then rename: a crash never leaves half a file. compress=True
    deflates the zip archive's entries (lossless; torch.load reads them as they are): for a file that ships, whose
    size counts, at the cost of a slower write and load."""
    if not compress:
        return atomic_write(path, lambda tmp: torch.save(state, tmp))

    def write_deflated(tmp):
        buffer = io.BytesIO()
        torch.save(state, buffer)  # torch writes its zip entries stored (uncompressed), aligned for mmap
        with zipfile.ZipFile(buffer) as stored, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as out:
            for entry in stored.infolist():
                out.writestr(entry.filename, stored.read(entry.filename))
    return atomic_write(path, write_deflated)


# Who writes each kind of checkpoint, for the message that refuses another kind.
WRITERS = {"gan": "python main.py --mode train", "gan_generator": "main.py --export or tools/export_generator.py",
           "gan_generator_mean": "tools/export_mean_fill.py",
           "diffusion": "python diffusion.py --mode train", "diffusion_export": "utils.loading.export_diffusion_model",
           "detail_map_head": "benchmarks/probe_detail_predictor.py"}


def load_checkpoint(path, kinds, mmap: bool = False) -> dict:
    """Load a checkpoint whose "kind" is in `kinds`, or raise InputError saying what is wrong. mmap=True maps the
    tensors from the file instead of reading them: cheap when only the config is wanted (`checkpoint_config`)."""
    path = check_checkpoint_path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except Exception as exc:  # truncated file, not a torch file, pickled code objects, ...
        raise InputError(f"cannot read checkpoint {path}: not a weights-only PyTorch checkpoint "
                         f"written by this project ({type(exc).__name__})") from None
    kind = state.get("kind") if isinstance(state, dict) else None
    if kind not in kinds:
        writers = "; ".join(dict.fromkeys(WRITERS[k] for k in kinds if k in WRITERS))
        names = " or ".join(kinds) if len(kinds) < 3 else f"{', '.join(kinds[:-1])} or {kinds[-1]}"
        raise InputError(f"{path} is not a {names} checkpoint (found kind={kind!r}); pass one "
                         f"written by {writers or 'this project'}")
    return state


def checkpoint_config(path, kinds) -> dict:
    """The config a checkpoint carries, without reading its weights into memory."""
    return load_checkpoint(path, kinds, mmap=True)["config"]


def rng_state() -> dict:
    """All RNG state the training loop uses: every random draw in the project goes through torch."""
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def epoch_checkpoint_path(checkpoint_dir, epoch: int) -> Path:
    return Path(checkpoint_dir) / f"checkpoint_epoch_{epoch}.pth"

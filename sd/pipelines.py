"""Loading diffusers inpainting pipelines (SDXL, SD 1.5, the SDXL refiner) from the hub or a folder.

    from sd.pipelines import pick_device_dtype, load_inpaint_pipeline
    device, dtype = pick_device_dtype()        # cuda + float16, else cpu + float32
    pipe = load_inpaint_pipeline("diffusers/stable-diffusion-xl-1.0-inpainting-0.1", device, dtype)

Without network (as on our machines) pass a local folder: one downloaded elsewhere with
`hf download <hub id> --local-dir DIR` (huggingface_hub's CLI, formerly `huggingface-cli`), or
a tiny random one made by `python tools/make_tiny_pipeline.py --kind sdxl-inpaint --out DIR`.

torch and diffusers are imported by the functions that use them: a script can build its flags from
this module (INPAINT_MODELS, DTYPE_NAMES) and refuse a bad one before paying ~5 s for those imports.
"""
import logging
import os
import re
import socket
import warnings
from pathlib import Path
from urllib.parse import urlparse

from utils.errors import InputError

# `--inpaint-model-name` -> hub id (Gen4Gen's choices; SD 1.5 inpainting moved from runwayml).
INPAINT_MODELS = {
    "sd-xl-1.0": "diffusers/stable-diffusion-xl-1.0-inpainting-0.1",
    "sd-1.5": "stable-diffusion-v1-5/stable-diffusion-inpainting",
}
SDXL_REFINER = "stabilityai/stable-diffusion-xl-refiner-1.0"
DTYPE_NAMES = ("float16", "bfloat16", "float32")  # --dtype choices, names of torch dtypes


class _DropEmptyFp32Warning(logging.Filter):
    """Drop diffusers' "modules ... should be kept in float32: []" warning.

    SDXL pipelines move a `force_upcast` VAE to float32 and back on every call, and diffusers
    0.42 then warns each time even though the list of such modules is empty.
    """

    def filter(self, record):
        return "should be kept in float32: []" not in record.getMessage()


def quiet_fp32_cast_warning():
    """Install `_DropEmptyFp32Warning` once (called when a pipeline is built, not at import)."""
    modeling_log = logging.getLogger("diffusers.models.modeling_utils")
    if not any(isinstance(f, _DropEmptyFp32Warning) for f in modeling_log.filters):
        modeling_log.addFilter(_DropEmptyFp32Warning())


class PipelineLoadError(InputError):
    """A pipeline could not be loaded: the message says why and how to pass a local folder."""


def check_resolution(resolution: int) -> int:
    """`resolution` if the VAE can encode it (a multiple of its factor 8), else InputError naming --resolution."""
    if resolution < 8 or resolution % 8:
        raise InputError(f"--resolution {resolution}: use a multiple of 8 (the VAE's factor)")
    return resolution


def pick_device_dtype(device: str | None = None, dtype: str | None = None):
    """(torch.device, torch.dtype): CUDA when present; float16 on GPU, float32 on CPU.

    float16 on CPU is supported by torch but ~30x slower than float32 there, hence the default.
    """
    import torch

    try:
        device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    except RuntimeError:
        raise InputError(f"--device {device}: not a device torch knows; use cuda, cuda:N or cpu") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda: no CUDA GPU is visible; use --device cpu")
    if dtype is not None and dtype not in DTYPE_NAMES:
        raise InputError(f"--dtype {dtype}: choose one of {', '.join(DTYPE_NAMES)}")
    return device, getattr(torch, dtype or ("float32" if device.type == "cpu" else "float16"))


def is_sdxl(pipe) -> bool:
    """True for SDXL pipelines (two text encoders / micro-conditioning), False for SD 1.x."""
    return hasattr(pipe, "text_encoder_2")


def _check_local(name_or_path: str, flag: str):
    """Return the folder if `name_or_path` is a local one; fail early on a wrong path."""
    path = Path(name_or_path).expanduser()
    if path.exists():
        if not (path / "model_index.json").is_file():
            raise PipelineLoadError(f"{flag} {name_or_path} is not a diffusers pipeline folder (no "
                                    "model_index.json): pass the folder that save_pretrained or "
                                    "hf download --local-dir wrote")
        return path
    # Hub ids are "name" or "owner/name"; anything else (/abs, ./rel, a/b/c) was meant as a path.
    if not re.fullmatch(r"[\w.-]+(/[\w.-]+)?", name_or_path) or name_or_path.startswith("."):
        raise PipelineLoadError(f"{flag} {name_or_path}: no such folder; pass an existing pipeline "
                                "folder or a hub id")
    return None


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether a TCP connection to the Hugging Face hub (HF_ENDPOINT) opens within `timeout` seconds. False when
    HF_HUB_OFFLINE is set; True behind a proxy (HTTPS_PROXY), whose reachability a direct connection cannot tell.
    Without it an offline machine waits through huggingface_hub's retries (about 30 s) before the load fails."""
    if os.environ.get("HF_HUB_OFFLINE", "").upper() in ("1", "ON", "YES", "TRUE"):
        return False
    if os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy"):
        return True
    endpoint = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    try:
        socket.create_connection((endpoint.hostname, endpoint.port or 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def load_inpaint_pipeline(name_or_path: str, device="cpu", dtype=None, *,
                          share_from=None, cpu_offload: bool = False, flag: str = "--model"):
    """Load an inpainting pipeline (hub id or local folder) onto `device` in `dtype` (None: float32).

    AutoPipelineForInpainting picks the class from model_index.json: SDXL and SD 1.x inpainting
    checkpoints, and the SDXL refiner (saved as Img2Img) becomes an SDXL inpainting pipeline.
    `share_from`: a loaded SDXL base whose text_encoder_2 and VAE the refiner reuses, as in the
    diffusers SDXL docs ("ensemble of expert denoisers"), which saves ~1.7 GB of weights.
    `cpu_offload`: keep the models in RAM and move each to the GPU only while it runs.
    Raises PipelineLoadError with a one-line, actionable message when loading fails.
    """
    import torch
    from diffusers import AutoPipelineForInpainting  # heavy import, only when a model is needed

    quiet_fp32_cast_warning()
    dtype = torch.float32 if dtype is None else dtype

    if cpu_offload and torch.device(device).type == "cpu":
        raise InputError("--cpu-offload needs a GPU (--device cuda); drop it on CPU")
    local = _check_local(str(name_or_path), flag)
    tiny_kind = ("sdxl-refiner" if share_from is not None else
                 "sdxl-inpaint" if "xl" in str(name_or_path).lower() else "sd-inpaint")
    kwargs = {"dtype": dtype}
    if local is None and not hub_reachable():  # the hub's local cache only: no retries against a dead network
        kwargs["local_files_only"] = True
    if share_from is not None:
        kwargs.update(text_encoder_2=share_from.text_encoder_2, vae=share_from.vae)
    # The hub checkpoints ship half-precision files as variant "fp16": half the download.
    variants = ["fp16", None] if dtype == torch.float16 and local is None else [None]
    for variant in variants:
        try:
            with warnings.catch_warnings():  # diffusers passes huggingface_hub an argument it deprecated
                warnings.filterwarnings("ignore", message=".*local_dir_use_symlinks.*")
                pipe = AutoPipelineForInpainting.from_pretrained(str(local or name_or_path),
                                                                 variant=variant, **kwargs)
            break
        except Exception as err:  # diffusers raises OSError, ValueError, HTTP errors, ...
            if variant is not None and "variant" in str(err):
                continue  # this checkpoint has no fp16 files: load the full-precision ones
            reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
            if kwargs.get("local_files_only"):
                reason = "the hub is unreachable from here and the model is not in its local cache"
            raise PipelineLoadError(
                f"could not load the inpainting pipeline {name_or_path} ({reason}); the Hugging "
                f"Face hub may be unreachable: on a machine with internet run `hf download "
                f"{name_or_path} --local-dir DIR`, copy DIR here and pass {flag} DIR "
                f"(for a smoke run: python tools/make_tiny_pipeline.py --kind {tiny_kind} --out "
                f"DIR, then {flag} DIR)") from err
    if share_from is not None and not is_sdxl(pipe):
        raise PipelineLoadError(f"{flag} {name_or_path} is not an SDXL refiner")
    if cpu_offload:
        pipe.enable_model_cpu_offload(device=device)
    else:
        pipe.to(device)
    # Our scripts show one progress bar over all images rather than one per denoising loop.
    pipe.set_progress_bar_config(disable=True)
    return pipe

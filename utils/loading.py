"""Models from checkpoints: build, load, export, and the fill(masked, mask) callables.

The nn.Module files (models/: gan.py, diffusion.py) stay free of I/O; this helper reads and writes checkpoints
(utils/checkpoint.py), so that the entry scripts, the notebook, utils/ and benchmarks/ load models the
same way without importing main.py or diffusion.py. Checkpoints are loaded with weights_only=True.
"""
import copy
from dataclasses import asdict, replace
from pathlib import Path

import torch

from models.gan import GeneratorConfig, MeanFill, UNetGenerator
from utils.checkpoint import load_checkpoint, save_checkpoint
from utils.errors import InputError
from utils.hardware import AUTOCAST_DTYPES
from utils.files import file_sha256, repo_path

SHIPPED_MODEL = str(repo_path("checkpoints/gan_scenery_128.pth"))  # eval/eval_2's default, from any folder
# A MeanFill's file (tools/export_mean_fill.py): the members' packed weights, each as a generator export holds them.
MEAN_FILL_KIND = "gan_generator_mean"
# What a generator file may be: a training checkpoint, an export, or a mean of fills (load_generator reads all three).
GENERATOR_FILE_KINDS = ("gan", "gan_generator", MEAN_FILL_KIND)
# The small scratch-diffusion baseline (64², EMA weights only) that compare.py and the notebook use by default.
SHIPPED_DIFFUSION = str(repo_path("checkpoints/diffusion_scenery_64.pth"))


# --- The detail map head (models/detail_map.py, benchmarks/probe_detail_predictor.py) --------------------------
DETAIL_HEAD_KIND = "detail_map_head"


def save_detail_head(head, groups, config: dict, path) -> Path:
    """Write a DetailMapHead with what rebuilds it (its input groups and width) and `config` (what it was trained
    on: the generator whose fill it reads, the image size, the crop ratio, the objective), atomically."""
    width = head.net[1].out_channels
    return save_checkpoint({"kind": DETAIL_HEAD_KIND, "state_dict": head.state_dict(),
                            "model_args": {"groups": list(groups), "width": width}, "config": dict(config)}, path)


def load_detail_head(path) -> tuple:
    """(model_args {"groups", "width"}, state_dict, config) of a head written by `save_detail_head`."""
    state = load_checkpoint(path, kinds=(DETAIL_HEAD_KIND,))
    return state["model_args"], state["state_dict"], state["config"]


# --- GAN (main.py) ---------------------------------------------------------------------------------
def generator_config(config: dict, model_args: dict = None) -> GeneratorConfig:
    """The architecture of a checkpoint (its "config" and "model_args"), or of a run (main.py's flags as a dict).

    Checkpoints written since the architecture became a `GeneratorConfig` carry it as "model_args", beside
    the run's config; `model_args` wins when given. Older ones (and a run's flags) hold the architecture as
    flat flags, read by `GeneratorConfig.from_flags` (the one upgrade step for old checkpoints).
    """
    if model_args is not None:
        return GeneratorConfig(**model_args)
    return GeneratorConfig.from_flags(config)


def build_generator(config: dict, model_args: dict = None, coarse_network: UNetGenerator = None) -> UNetGenerator:
    """The generator of a checkpoint's or a run's config (see `generator_config`); with context_features, the
    frozen EfficientNet-Lite0 it reads comes from its pip package, with a coarse stage, the frozen first-stage
    generator from the file the config names unless `coarse_network` (an export's embedded copy) is given
    (InputError, naming the fix, without either)."""
    architecture = generator_config(config, model_args)
    context_network = None
    if architecture.context_features:
        from models.effnet import load_effnet_lite0
        context_network, reason = load_effnet_lite0()
        if context_network is None:
            raise InputError(f"this generator (--context_features) needs the EfficientNet-Lite0 weights: {reason}")
    if architecture.coarse_stage and coarse_network is None:
        coarse_network = load_coarse_stage(architecture.coarse_stage, architecture.coarse_stage_sha256)
    return UNetGenerator(architecture, context_network, coarse_network)


def load_coarse_stage(path: str, sha256: str):
    """The frozen first stage of a two-stage generator (--coarse_stage): the generator file at `path` (relative to
    the repository, or absolute) whose hash is `sha256`, EMA weights, in eval mode, without its texture head's grain
    (the second stage makes the texture; the first gives the layout): a UNetGenerator, or a MeanFill whose members
    all lose their grain."""
    file = Path(path) if Path(path).is_absolute() else repo_path(path)
    if not file.is_file():
        raise InputError(f"this generator starts from the fill of the coarse stage {path}, which is missing: put that "
                         "generator file back (the repository ships it under checkpoints/)")
    if file_sha256(file) != sha256:
        raise InputError(f"the coarse stage {file} is not the file this generator was trained on (its SHA-256 "
                         f"differs from {sha256[:12]}...): restore that file")
    coarse, _ = load_generator(file)
    for member in coarse.members if isinstance(coarse, MeanFill) else [coarse]:
        if member.texture is not None:
            scale_texture(member, 0.0)
    return coarse


def with_coarse_stage(generator: UNetGenerator, config: dict, path) -> tuple:
    """(generator, config): the two-stage `generator` with its frozen first stage replaced by the generator file at
    `path`, its own weights unchanged; the config names the new file and its hash. Training-free: with
    coarse_stage_layout 1 the output's layout becomes the new stage's, but the second stage was trained on the old
    stage's fill, so score the result on a validation split like any other setting."""
    if generator.coarse_stage is None:
        raise InputError("only a two-stage generator (trained with --coarse_stage) has a first stage to replace")
    file = Path(path)
    if not file.is_file():
        raise InputError(f"the new first stage {path} is not a file: give a generator file (tools/export_generator.py)")
    sha = file_sha256(file)
    coarse = load_coarse_stage(str(file.resolve()), sha)
    if coarse.config.image_size != generator.config.image_size:
        raise InputError(f"the new first stage {path} fills {coarse.config.image_size}² images, this generator "
                         f"{generator.config.image_size}²: give a first stage trained at the same --image_size")
    architecture = replace(generator.config, coarse_stage=str(path), coarse_stage_sha256=sha)
    config = {**config, "coarse_stage": str(path), "coarse_stage_sha256": sha}
    return generator_from_weights(generator.state_dict(), architecture, config, coarse), config


def model_args(generator: UNetGenerator) -> dict:
    """What a checkpoint stores to rebuild `generator` (plain Python values: weights_only loading)."""
    return asdict(generator.config)


# Exports store tensors of more than this many values in fp16 (or int8): the convolutions' weights; BatchNorm
# statistics, biases and norms' affine parameters stay fp32.
PACKED_MIN_NUMEL = 4096


def pack_weights(state_dict: dict, int8: bool = False) -> tuple:
    """(weights, scales) for an export: the large floating-point tensors in fp16, or with int8 those of two or more
    dimensions (the convolutions' kernels) as int8 with one fp32 scale per output channel (symmetric, weight-only:
    `unpack_weights` restores float weights and the network computes in float as before), the rest as they are."""
    weights, scales = {}, {}
    for key, value in state_dict.items():
        if not (value.is_floating_point() and value.numel() > PACKED_MIN_NUMEL):
            weights[key] = value
        elif int8 and value.dim() >= 2:
            scale = value.float().flatten(1).abs().amax(dim=1).clamp_min(1e-12) / 127  # (out_channels,)
            shape = (-1,) + (1,) * (value.dim() - 1)
            weights[key] = (value.float() / scale.view(shape)).round().clamp(-127, 127).to(torch.int8)
            scales[key] = scale
        else:
            weights[key] = value.half()
    return weights, scales


def unpack_weights(weights: dict, scales: dict = None) -> dict:
    """The state dict of `pack_weights`' (weights, scales): the int8 tensors restored to float, the rest as stored
    (fp16 ones are cast where a network is built, `generator_from_weights`)."""
    scales = scales or {}
    return {k: v.float() * scales[k].view((-1,) + (1,) * (v.dim() - 1)) if k in scales else v
            for k, v in weights.items()}


def _generator_parts(state: dict, use_ema: bool) -> tuple:
    """(float state_dict, GeneratorConfig, config) of a loaded checkpoint or export `state` (see `generator_weights`)."""
    if use_ema and state.get("generator_ema"):
        weights = state["generator_ema"]["module"]
    else:
        weights = unpack_weights(state["generator"], state.get("generator_scales"))
    return weights, generator_config(state["config"], state.get("model_args")), state["config"]


def generator_weights(path, use_ema: bool = True) -> tuple:
    """(state_dict, GeneratorConfig, config) of a training checkpoint's generator (its EMA weights when it has
    them, unless use_ema is False) or of a generator export (fp16 or int8, unpacked), without building the
    network: what `load_generator` loads, for tools that only combine weights (tools/average_checkpoints.py)."""
    state = load_checkpoint(path, kinds=GENERATOR_FILE_KINDS)
    if state["kind"] == MEAN_FILL_KIND:
        raise InputError(f"{path} is a mean of several generators' fills (tools/export_mean_fill.py), not one "
                         "network's weights: give the generators it was made from")
    return _generator_parts(state, use_ema)


def generator_from_weights(weights: dict, architecture: GeneratorConfig, config: dict,
                           coarse_network: UNetGenerator = None) -> UNetGenerator:
    """The generator (eval mode, fp32) of `generator_weights`' three parts, or of weights combined from several;
    `coarse_network` is the frozen first stage of a two-stage generator when it comes from the export itself."""
    generator = build_generator(config, asdict(architecture), coarse_network)
    generator.load_state_dict({k: v.float() for k, v in weights.items()})
    return generator.eval()


def load_generator(path, use_ema: bool = True) -> tuple:
    """(generator in eval mode, config) from a training checkpoint (its EMA weights when it has them,
    unless use_ema is False) or a generator export; a two-stage export's embedded first stage is used in place of
    the file its config names (the export is then one self-contained file)."""
    state = load_checkpoint(path, kinds=GENERATOR_FILE_KINDS)
    if state["kind"] == MEAN_FILL_KIND:
        return _unpacked(state, state["config"]), state["config"]
    weights, architecture, config = _generator_parts(state, use_ema)
    coarse = _unpacked(state["coarse_stage"], config) if state.get("coarse_stage") else None  # frozen by its user
    return generator_from_weights(weights, architecture, config, coarse), config


def scale_texture(generator: UNetGenerator, scale: float) -> UNetGenerator:
    """Multiply the texture head's output by `scale` (its last layer is linear), in place.

    The head's strength trades PSNR for detail (more texture: higher sharpness, lower PSNR); a value
    picked on a validation split (`benchmarks/score.py --texture_scales`) is baked into an export
    (`main.py --export ... --texture_scale S`), which records it in its config.
    """
    if scale == 1:
        return generator
    if generator.texture is None:
        raise InputError("--texture_scale needs a generator with a texture head (trained with --texture_noise)")
    with torch.no_grad():
        generator.texture[-1].weight.mul_(scale)
        generator.texture[-1].bias.mul_(scale)
    return generator


def scale_exemplar(generator: UNetGenerator, fine: float, mid: float, coarse: float = 1.0) -> UNetGenerator:
    """Multiply the exemplar layer's gates (models/exemplar.py; linear in its last convolution) by `fine` for the
    fine band (x - G2 x), `mid` for the mid band (G2 x - G5 x) and `coarse` for the coarse band (G5 x - G10 x,
    with exemplar_coarse) of both sources, in place: the strength of the copied detail, picked on a validation
    split (benchmarks/probe_exemplar_strength.py) as --texture_scale is."""
    from models.exemplar import SOURCES
    if (fine, mid, coarse) == (1, 1, 1):
        return generator
    if generator.exemplar is None:
        raise InputError("--exemplar_scale needs a generator with an exemplar layer (trained with --exemplar_texture)")
    if coarse != 1 and not generator.exemplar.coarse:
        raise InputError("a coarse --exemplar_scale needs an exemplar layer with the coarse band "
                         "(trained with --exemplar_coarse): give FINE,MID only")
    per_source = [fine, mid] + ([coarse] if generator.exemplar.coarse else [])
    scales = torch.tensor(per_source * SOURCES)  # gate channels: per source, one per band
    assert scales.numel() == generator.exemplar.gate.out_channels
    with torch.no_grad():
        generator.exemplar.gate.weight.mul_(scales.view(-1, 1, 1, 1))
        generator.exemplar.gate.bias.mul_(scales)
    return generator


def with_detail_smoothing(generator: UNetGenerator, sigma: float, bands: int = 1) -> UNetGenerator:
    """A copy of `generator` that smooths its fill's detail amplitude across 8-px blocks (sigma in blocks, its
    `bands` finest Laplacian bands; models.filters.smooth_detail_amplitude); sigma 0 turns it off. Picked on a
    validation split (`benchmarks/score.py --detail_smoothing`) and baked into an export (`main.py --export ...
    --detail_smoothing S`), whose model_args record it."""
    if isinstance(generator, MeanFill):
        raise InputError("detail smoothing is a setting of one generator, not of a mean of fills: export the mean "
                         "(tools/export_mean_fill.py) of generators that already smooth")
    smoothed = copy.deepcopy(generator)
    smoothed.config = replace(generator.config, detail_smoothing=sigma, detail_smoothing_bands=bands)
    return smoothed


def _packed(network, int8: bool) -> dict:
    """What an export stores of `network`: a generator's architecture and packed weights (and its frozen first
    stage's, embedded the same way), or a MeanFill's members, each so; `_unpacked` reads it back."""
    if isinstance(network, MeanFill):
        return {"members": [_packed(member, int8) for member in network.members]}
    weights, scales = pack_weights(network.state_dict(), int8)
    part = {"model_args": model_args(network), "generator": weights}
    if scales:
        part["generator_scales"] = scales
    if network.coarse_stage is not None:
        part["coarse_stage"] = _packed(network.coarse_stage, int8)
    return part


def _unpacked(part: dict, config: dict):
    """The network (eval mode, fp32) of a `_packed` part; `config` is the file's (the run's record)."""
    if "members" in part:
        return MeanFill([_unpacked(member, config) for member in part["members"]]).eval()
    coarse = _unpacked(part["coarse_stage"], config) if part.get("coarse_stage") else None
    return generator_from_weights(unpack_weights(part["generator"], part.get("generator_scales")),
                                  GeneratorConfig(**part["model_args"]), config, coarse)


def export_generator(generator, config: dict, path, int8: bool = False, compress: bool = False) -> Path:
    """Generator-only file: large tensors in fp16 (half the size) or int8 (a quarter: `pack_weights`), BatchNorm
    statistics in fp32. A two-stage generator's frozen first stage is embedded the same way, so that the export
    alone is the model (its config still names the first stage's file and hash, for the record); a MeanFill is
    written as its members (kind MEAN_FILL_KIND), which `load_generator` reads back as a MeanFill. compress=True
    deflates the file (lossless: the same weights; `save_checkpoint`)."""
    kind = MEAN_FILL_KIND if isinstance(generator, MeanFill) else "gan_generator"
    return save_checkpoint({"kind": kind, "config": config, **_packed(generator, int8)}, path, compress=compress)


def generator_fill(generator, device, mixed_precision: str):
    """fill(masked, mask) for the shared eval code, under the chosen autocast precision."""
    generator = generator.to(device).to(memory_format=torch.channels_last)
    dtype = AUTOCAST_DTYPES[mixed_precision]

    @torch.no_grad()
    def fill(masked, mask):
        with torch.autocast(device_type=torch.device(device).type, dtype=dtype, enabled=dtype is not None):
            return generator(masked, mask).float()
    return fill


# --- Scratch diffusion (diffusion.py) -----------------------------------------------------------------
def diffusion_block_channels(config: dict) -> tuple:
    """UNet widths per level from --base_channels and --channel_mult, or InputError."""
    from models.diffusion import parse_channel_mult
    try:
        mult = parse_channel_mult(config["channel_mult"])
    except ValueError:
        raise InputError(f"--channel_mult must be comma-separated positive integers, got {config['channel_mult']!r} "
                         "(try the default 1,2,4,8,8)") from None
    if config["image_size"] % 2 ** (len(mult) - 1):
        raise InputError(f"--channel_mult has {len(mult)} levels, too many for --image_size {config['image_size']}: "
                         f"the size must be divisible by 2^(levels - 1) = {2 ** (len(mult) - 1)}")
    return tuple(config["base_channels"] * m for m in mult)


def build_diffusion_model(config: dict):
    from models.diffusion import InpaintUNet
    return InpaintUNet(config["image_size"], diffusion_block_channels(config), config["layers_per_block"],
                       config["attention"])


def make_diffusion_ema(model, config: dict):
    """EMA with warmup (decay 1 - (1 + step)^-3/4, capped): short CPU runs still average over many steps,
    as diffusers' train_unconditional.py does (ema_power 3/4)."""
    from diffusers.training_utils import EMAModel
    return EMAModel(model.parameters(), decay=config["ema_max_decay"], use_ema_warmup=True, inv_gamma=1.0, power=0.75)


def load_diffusion_model(path) -> tuple:
    """(network with the EMA weights, in eval mode; config; training noise-schedule config), from a
    training checkpoint or an `export_diffusion_model` file."""
    state = load_checkpoint(path, kinds=("diffusion", "diffusion_export"))
    model = build_diffusion_model(state["config"])
    if state["kind"] == "diffusion_export":
        model.load_state_dict(state["model"])
    else:
        ema = make_diffusion_ema(model, state["config"])
        ema.load_state_dict(state["ema"])
        ema.copy_to(model.parameters())
    return model.eval(), state["config"], state["scheduler_config"]


def export_diffusion_model(checkpoint_path, path) -> Path:
    """Sampling-only file from a diffusion training checkpoint: the EMA weights (fp32), the config and
    the noise schedule; no optimizer or raw weights (a quarter of the size). Not resumable."""
    model, config, scheduler_config = load_diffusion_model(checkpoint_path)
    return save_checkpoint({"kind": "diffusion_export", "config": config, "scheduler_config": scheduler_config,
                            "model": model.state_dict()}, path)


def diffusion_fill(model, schedule_config: dict, device, scheduler: str = "ddim", num_inference_steps: int = 50,
                   seed: int = 0, mixed_precision: str = "no", progress: bool = True):
    """fill(masked, mask): RePaint-style sampling with `scheduler` (ddim, ddpm, dpm) for `num_inference_steps`
    steps under `mixed_precision` autocast, from a generator seeded with `seed`."""
    from models.diffusion import make_sampler, repaint_sample
    model = model.to(device)
    sampler = make_sampler(scheduler, schedule_config)
    generator = torch.Generator(device).manual_seed(seed)

    def fill(masked, mask):
        return repaint_sample(model, sampler, masked, mask, num_inference_steps, generator,
                              AUTOCAST_DTYPES[mixed_precision], progress=progress)
    return fill

"""Conditional denoising diffusion for gap filling: the network, its noise schedules, and sampling.

The model is DDPM (Ho et al., "Denoising Diffusion Probabilistic Models", 2020) conditioned on the
task, as in the GAN Paint document's from-scratch baseline: the network predicts the noise eps of
x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps from 7 channels,

    x_t (3, noisy image) | mask (1, 1 = generate) | known pixels (3, the hole zeroed),

and is trained on the hole only (`losses.hole_mse` of the predicted noise). Sampling re-imposes the known
pixels at every step, forward-noised to the current timestep (RePaint, Lugmayr et al., CVPR 2022, Sec. 4.1;
without its resampling jumps: the network already sees the known pixels, so one pass suffices), and the
output keeps them exactly. Samplers: "ddpm" (ancestral, 1000 steps as in the document), "ddim" (Song et
al., ICLR 2021, eta = 0) and "dpm" (DPM-Solver++(2M), Lu et al., 2022), all from diffusers.

Only builders and pure tensor functions here: no argparse, no files, no device choice.
"""
import inspect
import math

import torch
import torch.nn as nn
from diffusers import DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler, UNet2DModel
from tqdm.auto import tqdm

from models.options import SAMPLERS


class InpaintUNet(nn.Module):
    """eps_theta(x_t, t | known, mask): a diffusers UNet2DModel on cat(x_t, mask, masked) (B, 7, S, S).

    Level i works at S / 2^i with block_channels[i] channels (`layers_per_block` ResNet blocks per
    level); `attention` adds self-attention in the middle block, at the lowest resolution, where
    the two known corners of the gap task can see each other.
    """

    def __init__(self, image_size: int = 64, block_channels=(16, 32, 64, 128, 128), layers_per_block: int = 1,
                 attention: bool = True):
        super().__init__()
        block_channels = tuple(int(c) for c in block_channels)
        levels = len(block_channels)
        if image_size % 2 ** (levels - 1):
            raise ValueError(f"image_size {image_size} must be divisible by 2^(levels - 1) = {2 ** (levels - 1)}")
        # GroupNorm groups must divide every width; at least 2 channels per group (1 = instance norm).
        groups = min(32, max(1, math.gcd(*block_channels) // 2))
        self.unet = UNet2DModel(
            sample_size=image_size, in_channels=7, out_channels=3, block_out_channels=block_channels,
            layers_per_block=layers_per_block, down_block_types=("DownBlock2D",) * levels,
            up_block_types=("UpBlock2D",) * levels, add_attention=attention, norm_num_groups=groups,
            attention_head_dim=math.gcd(block_channels[-1], 32))

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, masked: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x_t, masked (B, 3, S, S); mask (B, 1, S, S); t (B,) integer timesteps -> eps (B, 3, S, S)."""
        return self.unet(torch.cat([x_t, mask.to(x_t.dtype), masked.to(x_t.dtype)], dim=1), t).sample


def parse_channel_mult(text: str) -> tuple:
    """'1,2,4,8,8' -> (1, 2, 4, 8, 8); ValueError on anything else."""
    mult = tuple(int(m) for m in text.split(",") if m.strip())
    if not mult or min(mult) < 1:
        raise ValueError(f"channel multipliers must be positive integers, got {text!r}")
    return mult


def make_noise_scheduler(num_train_timesteps: int = 1000, beta_schedule: str = "squaredcos_cap_v2") -> DDPMScheduler:
    """The training (forward) process. Default: the cosine schedule of Nichol & Dhariwal (2021), made
    for small images, where DDPM's linear schedule reaches near-pure noise long before t = T.
    "linear" is DDPM's (beta 1e-4 .. 0.02)."""
    return DDPMScheduler(num_train_timesteps=num_train_timesteps, beta_schedule=beta_schedule,
                         prediction_type="epsilon", clip_sample=True)


def scheduler_config(scheduler) -> dict:
    """Plain-Python copy of a diffusers scheduler config (storable in a weights_only checkpoint)."""
    return {k: v for k, v in scheduler.config.items() if not k.startswith("_")}


def make_sampler(name: str, config: dict):
    """A reverse-process scheduler over the training schedule `config` (from `scheduler_config`).

    ddim and dpm use "trailing" timesteps (Lin et al., 2024): the first step starts from t = T - 1,
    pure noise, as the sampler's initial x_T assumes. There sqrt(abar) is ~5e-5 (cosine schedule), so
    the x_0 estimate (x_t - sqrt(1 - abar) eps) / sqrt(abar) must be clipped to [-1, 1]: DDPM and DDIM
    do it with clip_sample, DPM-Solver with thresholding at 1.0.
    """
    if name == "ddpm":
        return DDPMScheduler.from_config(config)
    if name == "ddim":
        return DDIMScheduler.from_config(_accepted(DDIMScheduler, config), timestep_spacing="trailing")
    if name == "dpm":
        return DPMSolverMultistepScheduler.from_config(
            _accepted(DPMSolverMultistepScheduler, config), algorithm_type="dpmsolver++", solver_order=2,
            timestep_spacing="trailing", thresholding=True, dynamic_thresholding_ratio=1.0, sample_max_value=1.0)
    raise ValueError(f"unknown sampler {name!r}; choose from {SAMPLERS}")


def _accepted(cls, config: dict) -> dict:
    """The keys of `config` that scheduler class `cls` takes (from_config warns about the others)."""
    params = inspect.signature(cls.__init__).parameters
    return {k: v for k, v in config.items() if k in params}


def forward_noise(alphas_cumprod: torch.Tensor, x0: torch.Tensor, noise: torch.Tensor, t) -> torch.Tensor:
    """q(x_t | x_0) = N(sqrt(abar_t) x_0, (1 - abar_t) I) at one timestep t for the whole batch."""
    abar = alphas_cumprod[int(t)].to(device=x0.device, dtype=torch.float32)
    return abar.sqrt() * x0 + (1.0 - abar).sqrt() * noise


@torch.no_grad()
def repaint_sample(model, sampler, masked: torch.Tensor, mask: torch.Tensor, num_inference_steps: int,
                   generator: torch.Generator = None, autocast_dtype=None, progress: bool = False) -> torch.Tensor:
    """Fill the hole: masked (B, 3, S, S) in [-1, 1] (hole zeroed), mask (B, 1, S, S) -> (B, 3, S, S).

    At each step the known region of x_t is replaced by the known pixels noised to level t (RePaint),
    so the network sees exactly what it saw in training; the known pixels of the result are `masked`
    bit for bit. All randomness comes from `generator` (global RNG untouched: sampling during
    training does not change the training run). The network runs under `autocast_dtype` if given;
    the scheduler arithmetic stays in float32.
    """
    masked, mask = masked.float(), mask.float()
    known = 1.0 - mask
    sampler.set_timesteps(num_inference_steps, device=masked.device)
    x = torch.randn(masked.shape, generator=generator, device=masked.device) * sampler.init_noise_sigma
    device_type = masked.device.type
    for t in tqdm(sampler.timesteps, desc=f"sampling ({num_inference_steps} steps)", leave=False,
                  disable=not progress):
        noise = torch.randn(masked.shape, generator=generator, device=masked.device)
        x = mask * x + known * forward_noise(sampler.alphas_cumprod, masked, noise, t)
        model_input = sampler.scale_model_input(x, t)
        with torch.autocast(device_type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            eps = model(model_input, t.expand(len(x)).to(masked.device), masked, mask)
        x = sampler.step(eps.float(), t, x, generator=generator).prev_sample
    return mask * x.clamp(-1.0, 1.0) + known * masked

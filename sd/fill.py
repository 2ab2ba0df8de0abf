"""A pretrained Stable Diffusion inpainting pipeline as a gap-filling method.

`make_sd_fill` turns a diffusers inpainting pipeline (models/pipelines.load_inpaint_pipeline) into
the project's `fill(masked, mask) -> completed` callable, so utils/evaluation.py scores it with the
same images, masks and metric code as the GAN and the scratch diffusion baseline:

    pipe = load_inpaint_pipeline("stable-diffusion-v1-5/stable-diffusion-inpainting", device, dtype)
    fill = make_sd_fill(pipe, prompt="a natural landscape photo", num_steps=50, seed=0)
    summary = evaluate_folder(fill, "data/scenery/test", 128, 0.4, "results/sd", device)

The pipeline works at its own resolution (512 for SD 1.5, 1024 for SDXL, 64 for the tiny test
pipeline): the S x S input is resized up to it, the hole repainted, the result resized back to S,
and the known pixels pasted back exactly (the VAE round trip changes every pixel).
"""
import torch
import torch.nn.functional as F
from PIL import Image

from data.masks import keep_known
from utils.fullres import resize
from utils.images import to_uint8

DEFAULT_PROMPT = "a natural landscape photo"


def resize_mask(mask: torch.Tensor, size: int) -> torch.Tensor:
    """(B, 1, H, W) 1 = generate -> (B, 1, size, size), binary.

    A pixel of the resized mask is hole if any of the hole reaches it: known pixels at the border,
    which the image resize blends with the zeroed hole, are regenerated rather than trusted.
    """
    if mask.shape[-2:] == (size, size):
        return mask
    soft = F.interpolate(mask.float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return (soft > 1e-3).to(mask.dtype)


def at_resolution(fill, size: int):
    """Run `fill` at size x size on inputs of any size S: resize in, fill, resize out, paste known pixels.

    Used for a model whose working size differs from the comparison size (a checkpoint trained at
    another S, or the SD pipeline). The output keeps the known pixels of `masked` bit for bit.
    """
    def resized_fill(masked: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        s = masked.shape[-1]
        if s == size:
            out = fill(masked, mask).float()
        else:
            small_mask = resize_mask(mask, size)
            out = fill(resize(masked, size, antialias=True) * (1 - small_mask), small_mask).float()
            out = resize(out, s, antialias=True)
        return keep_known(masked.float(), mask, out.to(masked.device))
    return resized_fill


def native_size(pipe) -> int:
    """The resolution a pipeline was trained at: UNet latent size x VAE factor (512 for SD 1.5)."""
    return int(pipe.unet.config.sample_size) * int(pipe.vae_scale_factor)


def to_pil(image: torch.Tensor) -> Image.Image:
    """(3, H, W) in [-1, 1] -> RGB PIL image."""
    return Image.fromarray(to_uint8(image).permute(1, 2, 0).cpu().numpy())


def mask_to_pil(mask: torch.Tensor) -> Image.Image:
    """(1, H, W), 1 = generate -> 'L' image, white = repaint (the diffusers convention)."""
    return Image.fromarray((mask[0] > 0.5).to(torch.uint8).mul(255).cpu().numpy(), "L")


def make_sd_fill(pipe, prompt: str = DEFAULT_PROMPT, negative_prompt: str = None, num_steps: int = 50,
                 guidance_scale: float = 7.5, strength: float = 1.0, seed: int = 0, pipe_size: int = None):
    """fill(masked, mask) for utils/evaluation.py from a diffusers inpainting pipeline.

    masked (B, 3, S, S) in [-1, 1] (hole zeroed), mask (B, 1, S, S) with 1 = generate ->
    (B, 3, S, S), the known pixels equal to `masked` exactly. The pipeline runs at `pipe_size`
    (default: its native resolution) with height/width passed explicitly. Image i of every call
    draws its noise from a CPU generator seeded with seed + i, so a call is deterministic and the
    same on CPU and GPU. strength 1.0 (default) starts the hole from pure noise; below 1 the
    pipeline starts from the input's hole, which is mid-grey.
    """
    pipe_size = pipe_size or native_size(pipe)
    if num_steps < 1 or not 0.0 < strength <= 1.0 or int(num_steps * strength) < 1:
        raise ValueError(f"need num_steps >= 1 and 0 < strength <= 1 with num_steps * strength >= 1, "
                         f"got num_steps={num_steps}, strength={strength}")

    @torch.no_grad()
    def sd_fill(masked: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        count = len(masked)
        result = pipe(prompt=[prompt] * count,
                      negative_prompt=[negative_prompt] * count if negative_prompt else None,
                      image=[to_pil(x) for x in masked], mask_image=[mask_to_pil(m) for m in mask],
                      height=pipe_size, width=pipe_size, num_inference_steps=num_steps,
                      guidance_scale=guidance_scale, strength=strength, output_type="pt",
                      generator=[torch.Generator("cpu").manual_seed(seed + i) for i in range(count)])
        return result.images.float() * 2.0 - 1.0  # (B, 3, pipe_size, pipe_size) in [0, 1] -> [-1, 1]

    return at_resolution(sd_fill, pipe_size)

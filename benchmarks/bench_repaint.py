"""Images per second of s3_background_repainting.py at --batch-size 1 and 4 (a benchmark, no test).

Times `repaint()` of the script (masks and start images, one pipeline call, the foreground paste) on
a synthetic composition: after one warm-up call per batch size, `--images` images in calls of B.
The weights are random: speed does not depend on them. By default the pipeline is the tiny one
(tools/make_tiny_pipeline.py) on CPU, and the full-size SDXL inpainting network when a GPU exists.

    # tiny pipeline on CPU, 64x64, 4 steps
    python benchmarks/bench_repaint.py --threads 1
    # full-size SDXL inpainting UNet / VAE / text encoders, float16, 1024x1024, 60 steps (GPU)
    python benchmarks/bench_repaint.py --device cuda
    # the same network on CPU, small and short enough to finish (~14 GB of RAM in float32)
    python benchmarks/bench_repaint.py --pipeline full-size --device cpu --resolution 256 \\
        --num-steps 2 --images 4
"""
import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import s3_background_repainting as s3  # noqa: E402
from sd.pipelines import (check_resolution, load_inpaint_pipeline, pick_device_dtype,  # noqa: E402
                              quiet_fp32_cast_warning)
from tools.make_tiny_pipeline import make_tokenizer, save_tiny_pipeline  # noqa: E402

# unet/config.json of diffusers/stable-diffusion-xl-1.0-inpainting-0.1 (the SDXL base UNet with 9
# input channels: 4 latent + 4 masked-image latent + 1 mask). 2816 = 6 time ids x 256 + 1280.
SDXL_INPAINT_UNET = dict(
    sample_size=128, in_channels=9, out_channels=4, layers_per_block=2,
    block_out_channels=(320, 640, 1280),
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    mid_block_type="UNetMidBlock2DCrossAttn", transformer_layers_per_block=(1, 2, 10),
    attention_head_dim=(5, 10, 20), cross_attention_dim=2048, use_linear_projection=True,
    addition_embed_type="text_time", addition_embed_type_num_heads=64,
    addition_time_embed_dim=256, projection_class_embeddings_input_dim=2816,
    norm_num_groups=32, norm_eps=1e-5, act_fn="silu", flip_sin_to_cos=True, freq_shift=0)
# vae/config.json of the same checkpoint (the SDXL VAE; it decodes in float32: force_upcast).
SDXL_VAE = dict(
    in_channels=3, out_channels=3, latent_channels=4, layers_per_block=2,
    block_out_channels=(128, 256, 512, 512), down_block_types=("DownEncoderBlock2D",) * 4,
    up_block_types=("UpDecoderBlock2D",) * 4, norm_num_groups=32, act_fn="silu",
    sample_size=1024, scaling_factor=0.13025, force_upcast=True)
# text_encoder (CLIP ViT-L/14) and text_encoder_2 (OpenCLIP ViT-bigG/14) configs.
CLIP_L = dict(vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
              num_attention_heads=12, max_position_embeddings=77, hidden_act="quick_gelu",
              projection_dim=768)
CLIP_BIGG = dict(vocab_size=49408, hidden_size=1280, intermediate_size=5120,
                 num_hidden_layers=32, num_attention_heads=20, max_position_embeddings=77,
                 hidden_act="gelu", projection_dim=1280)


def full_size_pipeline(device, dtype):
    """SDXL inpainting pipeline of the real sizes with random weights (no download)."""
    from diffusers import (AutoencoderKL, EulerDiscreteScheduler,
                           StableDiffusionXLInpaintPipeline, UNet2DConditionModel)
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection
    ids = dict(bos_token_id=512, eos_token_id=513, pad_token_id=513)  # the byte-level tokenizer's
    with torch.device(device):  # allocate on the target device: no 10 GB detour through RAM
        pipe = StableDiffusionXLInpaintPipeline(
            vae=AutoencoderKL(**SDXL_VAE), unet=UNet2DConditionModel(**SDXL_INPAINT_UNET),
            text_encoder=CLIPTextModel(CLIPTextConfig(**CLIP_L, **ids)),
            text_encoder_2=CLIPTextModelWithProjection(CLIPTextConfig(**CLIP_BIGG, **ids)),
            tokenizer=make_tokenizer(), tokenizer_2=make_tokenizer(),
            scheduler=EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012,
                                             beta_schedule="scaled_linear", steps_offset=1,
                                             timestep_spacing="leading"))
    pipe.to(device, dtype)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 2)[2])
    parser.add_argument("--pipeline", choices=("auto", "tiny", "full-size"), default="auto",
                        help="tiny random pipeline, or the real SDXL sizes with random weights "
                             "(default auto: full-size on a GPU, tiny on CPU)")
    parser.add_argument("--model", default=None,
                        help="pipeline folder to time instead (default: a fresh tiny one)")
    parser.add_argument("--device", default=None, help="default: cuda if present, else cpu")
    parser.add_argument("--dtype", default=None, choices=["float16", "bfloat16", "float32"],
                        help="default: float16 on GPU, float32 on CPU")
    parser.add_argument("--resolution", type=int, default=None,
                        help="default: 1024 full-size, 64 tiny")
    parser.add_argument("--num-steps", type=int, default=None,
                        help="default: 60 full-size (the script's), 4 tiny")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 4],
                        help="images per pipeline call to compare (default: 1 4)")
    parser.add_argument("--images", type=int, default=8,
                        help="timed images per batch size, after one warm-up call (default: 8)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    return parser.parse_args(argv)


def main(args):
    if args.resolution is not None:
        check_resolution(args.resolution)
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging
    # Keep the report readable: no per-component load bars, no tokenizer-length warnings.
    diffusers_logging.disable_progress_bar()
    transformers_logging.disable_progress_bar()
    transformers_logging.set_verbosity_error()
    quiet_fp32_cast_warning()
    device, dtype = pick_device_dtype(args.device, args.dtype)
    full_size = args.pipeline == "full-size" or (args.pipeline == "auto" and device.type == "cuda")
    if full_size and device.type == "cpu" and (args.resolution or 1024) > 256:
        raise SystemExit("error: --pipeline full-size on CPU takes minutes per step at 1024x1024: "
                         "add --resolution 256 --num-steps 2, or use --device cuda")
    if args.threads:
        torch.set_num_threads(args.threads)
    size = args.resolution or (1024 if full_size else 64)
    steps = args.num_steps or (60 if full_size else 4)

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        # Synthetic composition: a textured square on black, and its mask.
        src = tmp / "1_cat+dog"
        src.mkdir()
        rng = np.random.default_rng(0)
        img, mask = np.zeros((size, size, 3), np.uint8), np.zeros((size, size), np.uint8)
        box = (slice(size // 4, size - size // 4),) * 2
        img[box] = rng.integers(0, 256, (size - 2 * (size // 4),) * 2 + (3,))
        mask[box] = 255
        Image.fromarray(img).save(src / "img_000101.png")
        Image.fromarray(mask).save(src / "mask_000101.png")

        t0 = time.perf_counter()
        if full_size:
            pipe, what = full_size_pipeline(device, dtype), "full-size SDXL inpainting (random)"
        else:
            folder = args.model or save_tiny_pipeline("sdxl-inpaint", tmp / "tiny")
            pipe, what = load_inpaint_pipeline(str(folder), device, dtype), f"pipeline {folder}"
        build_s = time.perf_counter() - t0

        # Enough outputs of one composition for the warm-up call and the timed calls of every B.
        most = max(args.batch_sizes)
        run_args = s3.parse_args(["--src-dir", str(src), "--noise-bkg", "--resolution", str(size),
                                  "--num-steps", str(steps), "-n-bkg", "1",
                                  "--images-per-pair", str(most + args.images)])
        units = s3.plan_images(run_args, [(src / "img_000101.png", src / "mask_000101.png")],
                               [(None, None)], ["cat", "dog"], tmp)
        results = []
        for batch in args.batch_sizes:
            s3.repaint(pipe, None, units[:batch], run_args)  # warm-up: kernels, caches, allocator
            if device.type == "cuda":
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats(device)
            timed = units[most:most + args.images]
            t0 = time.perf_counter()
            for i in range(0, len(timed), batch):
                s3.repaint(pipe, None, timed[i:i + batch], run_args)
            if device.type == "cuda":
                torch.cuda.synchronize()
            seconds = time.perf_counter() - t0
            peak = (f", peak GPU memory {torch.cuda.max_memory_allocated(device) / 2**30:.1f} GiB"
                    if device.type == "cuda" else "")
            results.append(f"--batch-size {batch}: {len(timed) / seconds:.2f} images/s "
                           f"({seconds / len(timed):.3f} s/image over {len(timed)} images){peak}")

    hw = (torch.cuda.get_device_name(device) if device.type == "cuda"
          else f"CPU, torch threads: {torch.get_num_threads()}")
    print(f"{what}: {size}x{size}, {steps} steps (strength 0.9: {int(steps * 0.9)} run), "
          f"{str(dtype).removeprefix('torch.')}, {hw}; build/load {build_s:.1f} s")
    print("\n".join(results))


if __name__ == "__main__":
    from utils.cli import run
    sys.exit(run(main, parse_args))

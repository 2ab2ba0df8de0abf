"""Build a tiny, randomly initialised diffusers inpainting pipeline and save it to a folder.

The hub is unreachable on our machines, so smoke runs, tests and benchmarks load these instead of
the real weights. They use the real diffusers/transformers classes with the real wiring (two text
encoders and micro-conditioning for SDXL, a 9-channel inpainting UNet, a 4-channel refiner) at toy
widths, so every code path of `s3_background_repainting.py` runs; the images are noise.

    python tools/make_tiny_pipeline.py --kind sdxl-inpaint --out /tmp/tiny-sdxl
    python tools/make_tiny_pipeline.py --kind sdxl-refiner --out /tmp/tiny-refiner
    python tools/make_tiny_pipeline.py --kind sd-inpaint --out /tmp/tiny-sd

Widths follow the diffusers fast tests (tests/pipelines/stable_diffusion_xl/
test_stable_diffusion_xl_inpaint.py, get_dummy_components); each folder is ~2 MB.
"""
import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from utils.files import check_writable_folder, current_umask  # noqa: E402

KINDS = ("sdxl-inpaint", "sdxl-refiner", "sd-inpaint")

# One text-encoder width for everything: the refiner shares text_encoder_2 with the base (as the
# real SDXL refiner does), so both must be built identically.
TEXT_DIM = 32
TIME_EMBED_DIM = 8  # UNet `addition_time_embed_dim`


def byte_level_vocab() -> dict:
    """CLIP vocabulary with no merges: the 256 byte characters, the same with `</w>`, BOS, EOS.

    The byte -> printable-character table is GPT-2's `bytes_to_unicode` (openai/gpt-2, encoder.py),
    re-derived here because transformers 5 no longer exports it from the CLIP tokenizer.
    """
    printable = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
                 + list(range(ord("®"), ord("ÿ") + 1)))
    codes, extra = printable[:], 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            codes.append(256 + extra)
            extra += 1
    chars = [chr(c) for c in codes]
    vocab = {c: i for i, c in enumerate(chars)}
    vocab.update({c + "</w>": 256 + i for i, c in enumerate(chars)})
    vocab["<|startoftext|>"] = 512
    vocab["<|endoftext|>"] = 513
    return vocab


def make_tokenizer():
    """Byte-level CLIPTokenizer with the real 77-token context."""
    from transformers import CLIPTokenizer
    return CLIPTokenizer(vocab=byte_level_vocab(), merges=[], model_max_length=77)


def make_text_encoder(with_projection: bool):
    """Two-layer CLIP text encoder; `with_projection`: SDXL's text_encoder_2 (pooled output)."""
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection
    config = CLIPTextConfig(vocab_size=514, hidden_size=TEXT_DIM, intermediate_size=37,
                            num_attention_heads=4, num_hidden_layers=2, projection_dim=TEXT_DIM,
                            max_position_embeddings=77, bos_token_id=512, eos_token_id=513,
                            pad_token_id=513, hidden_act="gelu")
    cls = CLIPTextModelWithProjection if with_projection else CLIPTextModel
    return cls(config)


def make_unet(in_channels: int, cross_attention_dim: int, sdxl_time_ids: int = 0):
    """Two-level UNet; `sdxl_time_ids` = number of micro-conditioning values (6 base, 5 refiner).

    SDXL adds `time_ids` (each embedded to TIME_EMBED_DIM) and the pooled text_encoder_2 output to
    the timestep embedding, so `projection_class_embeddings_input_dim` must be their total size.
    """
    from diffusers import UNet2DConditionModel
    sdxl = {}
    if sdxl_time_ids:
        sdxl = dict(addition_embed_type="text_time", addition_time_embed_dim=TIME_EMBED_DIM,
                    projection_class_embeddings_input_dim=sdxl_time_ids * TIME_EMBED_DIM + TEXT_DIM,
                    use_linear_projection=True, attention_head_dim=(2, 4))
    return UNet2DConditionModel(
        block_out_channels=(32, 64), layers_per_block=1, sample_size=32, in_channels=in_channels,
        out_channels=4, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=cross_attention_dim,
        norm_num_groups=32, **sdxl)


def make_vae(scaling_factor: float):
    """Two-level VAE: a latent is 1/2 of the image side (the real one is 1/8)."""
    from diffusers import AutoencoderKL
    return AutoencoderKL(block_out_channels=[32, 64], in_channels=3, out_channels=3,
                         down_block_types=["DownEncoderBlock2D"] * 2,
                         up_block_types=["UpDecoderBlock2D"] * 2, latent_channels=4,
                         sample_size=64, scaling_factor=scaling_factor)


def build_pipeline(kind: str, seed: int = 0):
    """Return an unsaved tiny pipeline of `kind` (one of KINDS), deterministic given `seed`."""
    import torch
    from diffusers import (EulerDiscreteScheduler, PNDMScheduler, StableDiffusionInpaintPipeline,
                           StableDiffusionXLImg2ImgPipeline, StableDiffusionXLInpaintPipeline)
    if kind not in KINDS:
        raise ValueError(f"--kind must be one of {', '.join(KINDS)}, got {kind!r}")
    torch.manual_seed(seed)
    # Scheduler settings of the real SDXL / SD 1.5 model cards (scheduler_config.json).
    sdxl_sched = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012,
                                        beta_schedule="scaled_linear", steps_offset=1,
                                        timestep_spacing="leading")
    if kind == "sd-inpaint":
        return StableDiffusionInpaintPipeline(
            vae=make_vae(0.18215), text_encoder=make_text_encoder(False),
            tokenizer=make_tokenizer(), unet=make_unet(9, TEXT_DIM),
            scheduler=PNDMScheduler(beta_start=0.00085, beta_end=0.012,
                                    beta_schedule="scaled_linear", skip_prk_steps=True,
                                    steps_offset=1),
            safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    # Build the shared text_encoder_2 first, with the same seed for both SDXL kinds, so a refiner
    # and a base made separately hold identical weights (the script shares them, like the hub's).
    text_encoder_2 = make_text_encoder(True)
    vae = make_vae(0.13025)
    if kind == "sdxl-refiner":
        # The hub's refiner is saved as an Img2Img pipeline; AutoPipelineForInpainting maps it to
        # StableDiffusionXLInpaintPipeline on load. It has no first text encoder.
        return StableDiffusionXLImg2ImgPipeline(
            vae=vae, text_encoder=None, text_encoder_2=text_encoder_2, tokenizer=None,
            tokenizer_2=make_tokenizer(), unet=make_unet(4, TEXT_DIM, sdxl_time_ids=5),
            scheduler=sdxl_sched, requires_aesthetics_score=True,
            force_zeros_for_empty_prompt=False)
    return StableDiffusionXLInpaintPipeline(
        vae=vae, text_encoder=make_text_encoder(False), text_encoder_2=text_encoder_2,
        tokenizer=make_tokenizer(), tokenizer_2=make_tokenizer(),
        # Cross-attention sees both encoders' hidden states concatenated.
        unet=make_unet(9, 2 * TEXT_DIM, sdxl_time_ids=6), scheduler=sdxl_sched,
        requires_aesthetics_score=False, force_zeros_for_empty_prompt=True)


def save_tiny_pipeline(kind: str, out: Path, seed: int = 0) -> Path:
    """Build a tiny pipeline of `kind` and `save_pretrained` it (safetensors) into `out`."""
    pipe = build_pipeline(kind, seed)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    pipe.save_pretrained(out, safe_serialization=True)
    # safetensors writes its files -rw------- (a private temp file, renamed); give them the permissions of any
    # new file, as the project's own writes do (utils/files.py).
    for path in out.rglob("*"):
        if path.is_file():
            path.chmod(0o666 & ~current_umask())
    return out


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kind", required=True, choices=KINDS,
                        help="sdxl-inpaint: like diffusers/stable-diffusion-xl-1.0-inpainting-0.1; "
                             "sdxl-refiner: like stabilityai/stable-diffusion-xl-refiner-1.0; "
                             "sd-inpaint: like stable-diffusion-v1-5/stable-diffusion-inpainting")
    parser.add_argument("--out", required=True, type=Path, help="folder to write the pipeline to")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights")
    return parser.parse_args(argv)


def main(args):
    check_writable_folder(args.out, "--out")
    out = save_tiny_pipeline(args.kind, args.out, args.seed)
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    print(f"saved tiny {args.kind} pipeline to {out} ({size / 2**20:.1f} MB)")


if __name__ == "__main__":
    from utils.cli import run
    sys.exit(run(main, parse_args))

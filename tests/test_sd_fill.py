"""sd/fill.py and the loaders of sd/compare.py, with a tiny random SD inpainting pipeline.

The pipeline (tools/make_tiny_pipeline.py, native size 64) is built in memory once per module and
run for 2 denoising steps on CPU. No network.
"""
import os

os.environ["HF_HUB_OFFLINE"] = "1"  # before diffusers/huggingface_hub read it: never the network

import pytest
import torch

from data.masks import gap_mask, masked_input
from sd import compare as sd_compare
from sd.fill import at_resolution, make_sd_fill, native_size, resize_mask
from tools.make_tiny_pipeline import build_pipeline


@pytest.fixture(scope="module")
def pipe():
    pipe = build_pipeline("sd-inpaint")
    pipe.set_progress_bar_config(disable=True)
    return pipe


def gap_batch(size: int, count: int = 2, seed: int = 0):
    image = torch.rand(count, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1
    return masked_input(image, 0.4)


@pytest.mark.parametrize("size,work", [(48, 64), (64, 32), (64, 64)])
def test_at_resolution_keeps_known_pixels(size, work):
    calls = []

    def constant_fill(masked, mask):  # paints the hole 0.5 at the working size
        calls.append(masked.shape[-1])
        assert mask.shape[-1] == work and set(mask.unique().tolist()) <= {0.0, 1.0}
        return masked * (1 - mask) + 0.5 * mask

    masked, mask = gap_batch(size)
    out = at_resolution(constant_fill, work)(masked, mask)
    assert calls == [work] and out.shape == masked.shape
    assert torch.equal(out * (1 - mask), masked * (1 - mask)), "known pixels must be kept bit for bit"
    assert torch.allclose(out[:, :, 2:8, 2:8], torch.tensor(0.5)), "the hole is the fill's, resized"


def test_resize_mask_grows_the_hole_never_shrinks_it():
    mask = gap_mask(64, 0.4)[None]
    for size in (32, 48, 128):
        small = resize_mask(mask, size)
        back = torch.nn.functional.interpolate(small, size=(64, 64), mode="nearest")
        assert small.shape == (1, 1, size, size) and set(small.unique().tolist()) == {0.0, 1.0}
        assert (back >= mask).all(), "every pixel the hole touches must be regenerated"


def test_native_size(pipe):
    assert native_size(pipe) == 64  # latent 32 x VAE factor 2 (SD 1.5: 64 x 8 = 512)


@pytest.mark.parametrize("size", [32, 64])  # resized up to the pipeline's 64, and at its own size
def test_sd_fill_shape_known_pixels_determinism(pipe, size):
    masked, mask = gap_batch(size)
    fill = make_sd_fill(pipe, num_steps=2, seed=3)
    out = fill(masked, mask)
    assert out.shape == masked.shape and out.dtype == torch.float32 and torch.isfinite(out).all()
    assert out.min() >= -1 and out.max() <= 1
    assert torch.equal(out * (1 - mask), masked * (1 - mask)), "known pixels must be pasted back exactly"
    assert (out * mask).abs().sum() > 0, "the hole was painted"
    assert torch.equal(make_sd_fill(pipe, num_steps=2, seed=3)(masked, mask), out), "same seed, same output"
    assert not torch.equal(make_sd_fill(pipe, num_steps=2, seed=4)(masked, mask), out)
    # Image i draws from seed + i: the first image does not depend on what else is in the batch
    # (up to float rounding: batched convolutions sum in another order).
    torch.testing.assert_close(fill(masked[:1], mask[:1]), out[:1], atol=1e-4, rtol=0)


def test_sd_fill_explicit_pipe_size_and_bad_steps(pipe):
    masked, mask = gap_batch(64, count=1)
    out = make_sd_fill(pipe, num_steps=2, guidance_scale=1.0, pipe_size=32)(masked, mask)
    assert out.shape == masked.shape and torch.equal(out * (1 - mask), masked * (1 - mask))
    with pytest.raises(ValueError, match="num_steps"):
        make_sd_fill(pipe, num_steps=2, strength=0.2)  # 2 * 0.2 < 1: no step would run


def test_missing_weights_are_reported_not_raised(tmp_path):
    missing = sd_compare.load_pretrained_sd(str(tmp_path / "nowhere"), "cpu", torch.float32)
    assert not missing.available and "INPAINT_MODEL=" in missing.reason and "no such folder" in missing.reason
    (tmp_path / "empty").mkdir()
    not_a_pipeline = sd_compare.load_pretrained_sd(str(tmp_path / "empty"), "cpu", torch.float32)
    assert not not_a_pipeline.available and "model_index.json" in not_a_pipeline.reason
    gan = sd_compare.load_gan(str(tmp_path / "gan.pth"), "cpu")
    assert not gan.available and "checkpoint not found" in gan.reason and "GAN_CHECKPOINT" in gan.reason
    diffusion = sd_compare.load_scratch_diffusion("", "cpu", num_steps=2, seed=0)
    assert not diffusion.available and "DIFFUSION_CHECKPOINT" in diffusion.reason
    text = sd_compare.describe([missing, gan, diffusion] + sd_compare.baseline_methods("telea"), 64, 0.4,
                               "data/scenery/test")
    assert text.count("SKIPPED") == 3 and "OK       Telea" in text


def test_comparison_geometry():
    floors = sd_compare.baseline_methods("mean,telea")
    assert sd_compare.comparison_geometry(floors) == (128, 0.4)  # main.py's defaults without checkpoints
    gan = sd_compare.Method("gan", "GAN", make_fill=lambda: None, runs_at=64,
                            config={"image_size": 64, "crop_ratio": 0.3})
    other = sd_compare.Method("d", "diffusion", make_fill=lambda: None, runs_at=128,
                              config={"image_size": 128, "crop_ratio": 0.4})
    assert sd_compare.comparison_geometry([gan, other, *floors]) == (64, 0.3)  # the first checkpoint's
    assert gan.available and not other.available and "crop ratio 0.4" in other.reason
    assert sd_compare.comparison_geometry([gan], image_size=128) == (128, 0.3)

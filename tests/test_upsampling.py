"""The decoder's bilinear resize-convolution: no grid-aligned blocks, the same weights as "resize", and --init_from
moves a trained generator from one to the other."""
import pytest
import torch

from models import GeneratorConfig, UNetGenerator
from models.gan import upsample_conv
from tests.helpers import tiny_gan_args


def tiny_generator(upsampling: str) -> UNetGenerator:
    return UNetGenerator(GeneratorConfig(32, ngf=8, norm="group", upsampling=upsampling, res_blocks=1,
                                         harmonic=True, texture_noise=4))


def test_nearest_resize_repeats_pixels_in_2x2_blocks_and_bilinear_does_not():
    torch.manual_seed(0)
    x = torch.randn(1, 4, 8, 8)
    nearest, bilinear = upsample_conv(4, 4, "resize", True)[0](x), upsample_conv(4, 4, "bilinear", True)[0](x)
    assert nearest.shape == bilinear.shape == (1, 4, 16, 16)
    # Within each 2x2 block the nearest map is constant (the block grid a trained decoder can keep) ...
    assert torch.equal(nearest[..., 0::2, :], nearest[..., 1::2, :])
    assert torch.equal(nearest[..., :, 0::2], nearest[..., :, 1::2])
    # ... the bilinear map is not: its neighbours differ by a quarter of the coarse step, everywhere.
    assert (bilinear[..., :, 0::2] - bilinear[..., :, 1::2]).abs().amin() > 0
    # Interpolation, not extrapolation: each value lies within the range of the coarse map.
    assert bilinear.amin() >= x.amin() and bilinear.amax() <= x.amax()


def test_bilinear_generator_takes_the_resize_generators_weights_and_fills_differently():
    torch.manual_seed(0)
    resize, bilinear = tiny_generator("resize"), tiny_generator("bilinear")
    assert resize.state_dict().keys() == bilinear.state_dict().keys()
    for p in resize.parameters():  # away from the no-op start, so the decoder's upsampling shows in the fill
        p.data.add_(0.05 * torch.randn_like(p))
    bilinear.load_state_dict(resize.state_dict())
    resize.eval(), bilinear.eval()
    image, mask = torch.rand(2, 3, 32, 32) * 2 - 1, torch.zeros(2, 1, 32, 32)
    mask[..., 4:28, 4:28] = 1
    with torch.no_grad():
        a, b = resize(image, mask), bilinear(image, mask)
    assert a.shape == b.shape == (2, 3, 32, 32)
    assert torch.equal(a * (1 - mask), b * (1 - mask))  # the known pixels are the input's in both
    assert (a - b).abs().amax() > 1e-3


def test_init_from_switches_a_resize_run_to_bilinear_but_not_to_transpose(data, tmp_path):
    import main as gan
    from utils.checkpoint import load_checkpoint
    from utils.errors import InputError

    gan.main(tiny_gan_args(data, tmp_path / "a", "--upsampling", "resize"))
    source = tmp_path / "a" / "checkpoint_epoch_1.pth"
    gan.main(tiny_gan_args(data, tmp_path / "b", "--init_from", str(source), "--upsampling", "bilinear", "--lr", "0"))
    a, b = load_checkpoint(source, ("gan",)), load_checkpoint(tmp_path / "b" / "checkpoint_epoch_1.pth", ("gan",))
    assert b["config"]["upsampling"] == "bilinear" and b["model_args"]["upsampling"] == "bilinear"
    for key, value in a["generator"].items():  # lr 0: the source's weights, in the bilinear decoder
        if value.is_floating_point():
            assert torch.equal(value, b["generator"][key]), key
    # The swapped decoder draws another fill: its average starts over (warm-up) instead of going on at full decay.
    assert b["generator_ema"]["updates"] == 2  # its two steps (a fork that keeps the upsampling starts at full decay)
    with pytest.raises(InputError, match="--upsampling resize"):
        gan.main(tiny_gan_args(data, tmp_path / "c", "--init_from", str(source), "--upsampling", "transpose"))


def test_grid_contrast_finds_grid_aligned_blocks_in_the_hole_at_any_phase():
    from utils.metrics import grid_contrast, grid_phase_profile
    torch.manual_seed(0)
    mask = torch.zeros(3, 1, 64, 64)
    mask[..., 8:56, 8:56] = 1
    blocks = torch.nn.functional.interpolate(torch.rand(3, 3, 16, 16), scale_factor=4, mode="nearest")  # 4-px
    noise = torch.rand(3, 3, 64, 64)
    # All the steps of 4-px blocks fall on 2 of 8 positions: (max - min) / mean = 1 / (2/8) = 4 (up to the two
    # positions' different block edges).
    assert grid_contrast(grid_phase_profile(blocks, mask)) == pytest.approx(4, abs=0.15)
    shifted = torch.roll(blocks, shifts=(3, 3), dims=(-2, -1))  # the decoder's blocks share one origin
    assert grid_contrast(grid_phase_profile(shifted, mask)) == pytest.approx(4, abs=0.15)
    assert grid_contrast(grid_phase_profile(noise, mask)) < 0.1
    # Only steps between two hole pixels count: blocks in the known part leave the hole's noise flat.
    mixed = blocks * (1 - mask) + noise * mask
    assert grid_contrast(grid_phase_profile(mixed, mask)) < 0.1

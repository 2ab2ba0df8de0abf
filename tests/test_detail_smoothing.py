"""The detail-amplitude smoothing (models.filters.smooth_detail_amplitude), in the generator, its export and
benchmarks/score.py."""
import json

import pytest
import torch
import torch.nn.functional as F

from data.masks import masked_input
from models import GeneratorConfig, UNetGenerator
from models.filters import block_detail, smooth_detail_amplitude
from utils.realism import detail_placement, lowpass_hole_psnr


def textured_pair(size: int = 128, seed: int = 0):
    """(truth, fill, mask): a truth whose texture's amplitude ramps smoothly from the left to the right edge, and a
    fill with the same texture whose amplitude is also multiplied by an independent random factor per 8-px block
    (what a generator's drawn texture does on top of where it puts detail). Both in [-1, 1] on a grey base."""
    g = torch.Generator().manual_seed(seed)
    texture = torch.randn(1, 1, size, size, generator=g).expand(1, 3, size, size)
    ramp = torch.linspace(0.02, 0.3, size).view(1, 1, 1, size)
    truth = (texture * ramp).clamp(-1, 1)
    noise = torch.exp(0.6 * torch.randn(1, 1, size // 8, size // 8, generator=g))
    fill = (texture * ramp * F.interpolate(noise, scale_factor=8, mode="nearest")).clamp(-1, 1)
    mask = masked_input(truth, 0.4)[1]
    return truth, fill, mask


def test_off_is_the_identity_and_the_known_pixels_never_change():
    truth, fill, mask = textured_pair()
    assert smooth_detail_amplitude(fill, mask, 0.0) is fill
    for bands in (1, 2):
        out = smooth_detail_amplitude(fill, mask, 1.0, bands)
        assert out.shape == fill.shape and out.dtype == fill.dtype and out.abs().max() <= 1
        known = (1 - mask).expand_as(out).bool()
        assert torch.equal(out[known], fill[known])
        assert (out - fill)[~known].abs().max() > 0.01  # it does act in the hole


def test_it_evens_out_block_amplitude_noise_and_so_raises_detail_placement():
    """The fill's per-block amplitude noise hides where its detail is (the ramp); smoothing brings it back."""
    gains = []
    for seed in range(3):
        truth, fill, mask = textured_pair(seed=seed)
        before = detail_placement(fill, truth, mask)[0]
        after = detail_placement(smooth_detail_amplitude(fill, mask, 1.0), truth, mask)[0]
        gains.append(after - before)
    assert min(gains) > 0.05, gains


def test_an_even_texture_and_the_layout_are_left_alone():
    truth, _, mask = textured_pair()
    flat = torch.randn(1, 3, 128, 128, generator=torch.Generator().manual_seed(5)).mul(0.1).clamp(-1, 1)
    out = smooth_detail_amplitude(flat, mask, 1.0)
    hole = mask.expand_as(out).bool()
    # Per-block energies of stationary noise vary by ~10 %: the gains stay near 1.
    assert (out - flat)[hole].abs().mean() < 0.15 * flat[hole].abs().mean()
    # The layout (what low-pass hole PSNR compares) barely moves, on a fill with very uneven blocks too.
    _, fill, _ = textured_pair()
    assert lowpass_hole_psnr(smooth_detail_amplitude(fill, mask, 1.5), fill, mask)[0] > 40
    # The block map itself gets smoother: less block-to-block variance of the log energy inside the hole.
    def roughness(x):
        blocks, inside = block_detail((x + 1) / 2, mask)
        log = blocks.clamp_min(1e-6).log()
        dx = (log[:, :, 1:] - log[:, :, :-1])[inside[:, :, 1:] & inside[:, :, :-1]]
        return dx.pow(2).mean()
    assert roughness(smooth_detail_amplitude(fill, mask, 1.0)) < 0.5 * roughness(fill)


def smoothing_generator(sigma: float = 0.0) -> UNetGenerator:
    return UNetGenerator(GeneratorConfig(32, ngf=8, norm="group", upsampling="resize", res_blocks=1, harmonic=True,
                                         texture_noise=4, detail_smoothing=sigma))


def test_the_generator_applies_it_last_and_old_configs_read_as_off():
    torch.manual_seed(0)
    plain = smoothing_generator(0.0).eval()
    torch.nn.init.normal_(plain.texture[-1].weight, 0, 0.3)  # a head that draws texture
    smoothed = smoothing_generator(1.0).eval()
    smoothed.load_state_dict(plain.state_dict())  # no weights of its own
    masked, mask = masked_input(torch.rand(2, 3, 32, 32) * 2 - 1, 0.4)
    with torch.no_grad():
        expected = smooth_detail_amplitude(plain(masked, mask), mask, 1.0)
        assert torch.allclose(smoothed(masked, mask), expected, atol=1e-6)
    assert not torch.equal(expected, plain(masked, mask))
    # Checkpoints written before the field existed (model_args without it, or flags) build it switched off.
    old_args = {k: v for k, v in vars(plain.config).items() if not k.startswith("detail_smoothing")}
    assert GeneratorConfig(**old_args).detail_smoothing == 0
    with pytest.raises(ValueError, match="detail_smoothing"):
        GeneratorConfig(32, ngf=8, detail_smoothing=-1)
    with pytest.raises(ValueError, match="detail_smoothing_bands"):
        GeneratorConfig(32, ngf=8, detail_smoothing=1, detail_smoothing_bands=0)
    # Gradients still reach the network through it (the gain is a constant for them).
    smoothed.train()
    smoothed(masked, mask).mean().backward()
    assert smoothed.texture[-1].weight.grad.abs().sum() > 0


def test_export_bakes_it_in_and_score_parses_its_settings(data, tmp_path):
    import main as gan
    from benchmarks.score import detail_smoothings
    from utils.loading import load_generator, with_detail_smoothing
    from tests.helpers import tiny_gan_train_argv
    from utils.errors import InputError

    gan.main(gan.parse_args(tiny_gan_train_argv(data, tmp_path / "a", "--texture_noise", "4")))
    trained = tmp_path / "a" / "checkpoint_epoch_1.pth"
    gan.main(gan.parse_args(["--mode", "train", "--checkpoint_path", str(trained), "--epochs", "1",
                             "--export", str(tmp_path / "g.pth"), "--detail_smoothing", "1.5",
                             "--detail_smoothing_bands", "2"]))
    exported, _ = load_generator(tmp_path / "g.pth")
    assert (exported.config.detail_smoothing, exported.config.detail_smoothing_bands) == (1.5, 2)
    source, _ = load_generator(trained)
    assert source.config.detail_smoothing == 0  # the copy was changed, not the run's generator
    copy = with_detail_smoothing(source, 1.5, 2)
    masked, mask = masked_input(torch.rand(1, 3, 64, 64) * 2 - 1, 0.4)
    with torch.no_grad():  # the export's fp16 weights: equal up to their rounding
        assert torch.allclose(exported(masked, mask), copy(masked, mask), atol=2e-2)
    with pytest.raises(SystemExit):  # for exports only, like --texture_scale
        gan.parse_args(["--mode", "train", "--detail_smoothing", "1"])
    assert detail_smoothings(None) == [None]
    assert detail_smoothings("0, 1,1.5:2") == [(0.0, 1), (1.0, 1), (1.5, 2)]
    for bad in ("x", "1:0", "-1", ","):
        with pytest.raises(InputError, match="--detail_smoothing"):
            detail_smoothings(bad)


def test_score_adds_a_row_per_smoothing_setting(data, tmp_path, capsys):
    from benchmarks.score import main as score_main, parse_args as score_args
    from utils.loading import export_generator
    torch.manual_seed(0)
    generator = UNetGenerator(GeneratorConfig(64, ngf=8, texture_noise=4))
    torch.nn.init.normal_(generator.texture[-1].weight, 0, 0.3)  # texture for the smoothing to act on
    path = export_generator(generator, {"image_size": 64, "crop_ratio": 0.4}, tmp_path / "g.pth")
    score_main(score_args(["--test_dir", str(data / "test"), "--checkpoint", f"tiny={path}", "--floors", "",
                           "--detail_smoothing", "0,1:2", "--out_dir", str(tmp_path / "score")]))
    rows = [line.split("|") for line in capsys.readouterr().out.splitlines() if line.startswith("| tiny")]
    assert [row[1].strip() for row in rows] == ["tiny, smoothing 0", "tiny, smoothing 1 (2 bands)"]
    plain, smoothed = (json.loads((tmp_path / "score" / folder / "metrics_summary.json").read_text())
                       for folder in ("tiny_smoothing_0", "tiny_smoothing_1_2_bands_"))
    assert plain["placement"] != smoothed["placement"] and plain["psnr_lowpass"] == pytest.approx(
        smoothed["psnr_lowpass"], abs=0.1)  # the detail moved, the layout stayed

"""Noise injection in the generator's decoder (GeneratorConfig.noise_injection, --noise_injection): per-channel
strengths that start at zero, StyleGAN's per-layer noise."""
import pytest
import torch

from data.masks import masked_input
from models import GeneratorConfig, UNetGenerator


def _pair():
    torch.manual_seed(0)
    plain = UNetGenerator(GeneratorConfig(64, 8, texture_noise=0)).eval()
    noisy = UNetGenerator(GeneratorConfig(64, 8, texture_noise=0, noise_injection=3)).eval()
    missing, unexpected = noisy.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and all(k.startswith("noise_strength.") for k in missing) and missing
    return plain, noisy


def test_injected_noise_starts_as_a_no_op_on_the_decoder_maps():
    plain, noisy = _pair()
    image = torch.rand(2, 3, 64, 64) * 2 - 1
    masked, mask = masked_input(image, 0.4)
    with torch.no_grad():
        assert torch.equal(plain(masked, mask), noisy(masked, mask))
    # one strength per channel of the S/8, S/4 and S/2 maps (64 px: 32, 16 and 8 channels of 8 ngf)
    assert sorted(p.shape[1] for p in noisy.noise_strength.values()) == [8, 16, 32]


def test_the_strengths_learn_and_the_noise_moves_the_fill_in_training_only_through_them():
    _, noisy = _pair()
    image = torch.rand(2, 3, 64, 64) * 2 - 1
    masked, mask = masked_input(image, 0.4)
    last = [m for m in noisy.up[0].modules() if isinstance(m, torch.nn.Conv2d)][-1]
    torch.nn.init.normal_(last.weight, 0, 0.05)  # a trained model's last layer is not the harmonic start's zero
    noisy.train()
    out = noisy(masked, mask)
    (out * torch.randn_like(out)).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in noisy.noise_strength.values())
    with torch.no_grad():
        for p in noisy.noise_strength.values():
            p.fill_(0.5)
        torch.manual_seed(1)
        first = noisy(masked, mask)
        torch.manual_seed(1)
        again = noisy(masked, mask)
        other = noisy(masked, mask)  # the global RNG has moved on
    assert torch.equal(first, again) and not torch.equal(first, other)
    hole = mask.expand_as(first) > 0.5
    assert torch.equal(first[~hole], other[~hole])  # the known pixels are kept


def test_in_eval_the_noise_is_one_pattern_whatever_the_batch():
    _, noisy = _pair()
    with torch.no_grad():
        for p in noisy.noise_strength.values():
            p.fill_(0.5)
    image = torch.rand(3, 3, 64, 64) * 2 - 1
    masked, mask = masked_input(image, 0.4)
    with torch.no_grad():
        batch = noisy(masked, mask)
        alone = noisy(masked[2:], mask[2:])
        again = noisy(masked, mask)
    assert torch.equal(batch, again)
    assert torch.allclose(batch[2:], alone, atol=1e-5)


def test_init_from_adds_the_strengths_and_a_resumed_run_is_the_same_run(data, tmp_path):
    import main as gan
    from tests.helpers import tiny_gan_args, train_straight_and_resumed
    from utils.errors import InputError

    gan.main(tiny_gan_args(data, tmp_path / "a"))
    source = str(tmp_path / "a" / "checkpoint_epoch_1.pth")
    straight, split = train_straight_and_resumed(data, tmp_path, "--init_from", source, "--noise_injection", "3")
    assert straight["model_args"]["noise_injection"] == 3 and straight["config"]["noise_injection"] == 3
    strengths = [v for k, v in straight["generator"].items() if k.startswith("noise_strength.")]
    assert len(strengths) == 3 and all(s.abs().sum() > 0 for s in strengths)  # trained from zero
    for key, value in straight["generator"].items():
        assert torch.equal(value, split["generator"][key]), f"generator.{key} differs after resume"
    with pytest.raises(InputError, match="--noise_injection"):  # strengths may be added, not dropped
        gan.main(tiny_gan_args(data, tmp_path / "c", "--init_from", str(tmp_path / "straight" / "checkpoint_epoch_2.pth")))


def test_old_flags_build_a_generator_without_injected_noise():
    config = GeneratorConfig.from_flags({"image_size": 64, "ngf": 8})
    assert config.noise_injection == 0
    assert UNetGenerator(config).noise_strength is None


def test_the_count_picks_the_finest_maps_and_bad_counts_are_refused():
    one = UNetGenerator(GeneratorConfig(64, 8, texture_noise=0, noise_injection=1))
    assert [p.shape[1] for p in one.noise_strength.values()] == [8]  # the S/2 map only (ngf channels)
    with pytest.raises(ValueError, match="noise_injection"):
        GeneratorConfig(64, 8, texture_noise=0, noise_injection=4)

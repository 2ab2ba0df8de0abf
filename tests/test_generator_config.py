"""The architecture as data: GeneratorConfig, model_args in checkpoints, the upgrade of old checkpoints."""
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from data.datasets import load_eval_image
from data.masks import compose_two, masked_input
from models import GeneratorConfig, UNetGenerator
from models.gan import ContextualAttention
from utils.loading import SHIPPED_MODEL, build_generator, generator_config, generator_fill, load_generator
from utils.checkpoint import load_checkpoint
from utils.images import to_uint8

ROOT = Path(__file__).resolve().parents[1]


def test_the_shipped_checkpoint_gives_the_fill_it_gave_before_the_refactor():
    generator, _ = load_generator(SHIPPED_MODEL)
    assert generator.config == GeneratorConfig()  # the defaults are the shipped architecture
    first = load_eval_image(ROOT / "data/scenery/test/mate_yellow_flower.jpg", 128)
    second = load_eval_image(ROOT / "data/scenery/test/lomiri_picos_mountains.jpg", 128)
    combined, mask = compose_two(first, second, 0.4)
    out = to_uint8(generator_fill(generator, "cpu", "no")(combined[None], mask[None])[0]).permute(1, 2, 0).numpy()
    stored = np.asarray(Image.open(ROOT / "tests/data/shipped_eval_2_fill.png"))
    diff = np.abs(out.astype(int) - stored.astype(int))
    # Bit-identical on the machine that stored it; another CPU's float kernels may round a pixel differently.
    # (Stored again when the harmonic start became exact, tests/data/CREDITS.md: 12 % of pixels by 1-2 levels.)
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-3


def test_old_flat_configs_upgrade_to_the_architecture_they_were_trained_with():
    pix2pix = generator_config({"image_size": 64, "ngf": 8})  # a first-version checkpoint's config
    assert pix2pix == GeneratorConfig(64, 8, norm="batch", upsampling="transpose", res_blocks=0, harmonic=False,
                                      texture_noise=0, attention=False)
    shipped = load_checkpoint(SHIPPED_MODEL, kinds=("gan_generator",))
    assert generator_config(shipped["config"], shipped.get("model_args")) == GeneratorConfig()
    new = generator_config({"image_size": 64, "ngf": 8}, model_args=asdict(GeneratorConfig(64, 16)))
    assert new == GeneratorConfig(64, 16)  # model_args win over the flat flags


def test_checkpoints_carry_model_args_and_rebuild_from_them(data, tmp_path):
    import main as gan
    from tests.helpers import tiny_gan_train_argv
    gan.main(gan.parse_args(tiny_gan_train_argv(data, tmp_path, "--texture_noise", "0", "--attention",
                                                "--export", str(tmp_path / "g.pth"))))
    for path, kind in ((tmp_path / "checkpoint_epoch_1.pth", "gan"), (tmp_path / "g.pth", "gan_generator")):
        state = load_checkpoint(path, kinds=(kind,))
        assert state["model_args"] == asdict(GeneratorConfig(64, 8, texture_noise=0, attention=True))
        generator = build_generator(state["config"], state["model_args"])
        generator.load_state_dict({k: v.float() for k, v in state["generator"].items()})  # strict


@pytest.mark.parametrize("field, value, message", [("image_size", 100, "power of two"), ("norm", "layer", "norm"),
                                                   ("upsampling", "pixelshuffle", "upsampling"),
                                                   ("dropout", 1.0, "dropout")])
def test_bad_architectures_are_refused(field, value, message):
    with pytest.raises(ValueError, match=message):
        GeneratorConfig(**{field: value})


def test_dropout_acts_in_training_only_and_leaves_the_weights_interchangeable():
    torch.manual_seed(0)
    plain = UNetGenerator(GeneratorConfig(64, 8, texture_noise=0))
    dropped = UNetGenerator(GeneratorConfig(64, 8, texture_noise=0, dropout=0.5))
    torch.nn.init.normal_(plain.up[0][-1][-1].weight, std=0.02)  # a non-zero residual: the decoder shows
    dropped.load_state_dict(plain.state_dict())  # strict: dropout adds no weights (--init_from, exports)
    masked, mask = masked_input(torch.rand(1, 3, 64, 64) * 2 - 1, 0.4)
    plain.eval(), dropped.eval()
    with torch.no_grad():
        assert torch.equal(dropped(masked, mask), plain(masked, mask))  # eval: no dropout
        dropped.train()
        first, second = dropped(masked, mask), dropped(masked, mask)
    assert not torch.allclose(first, second)  # training: a new dropout pattern each pass
    assert sum(isinstance(m, torch.nn.Dropout) for m in dropped.modules()) == 3  # pix2pix's innermost three
    assert generator_config({"image_size": 64, "ngf": 8}).dropout == 0.0  # runs before it had none


def test_contextual_attention_starts_as_a_no_op_and_copies_from_the_known_squares():
    torch.manual_seed(0)
    without = UNetGenerator(GeneratorConfig(32, 8, texture_noise=0))
    with_attention = UNetGenerator(GeneratorConfig(32, 8, texture_noise=0, attention=True))
    missing, unexpected = with_attention.load_state_dict(without.state_dict(), strict=False)
    assert unexpected == [] and missing and all(k.startswith("attention.") for k in missing)
    image = torch.rand(2, 3, 32, 32) * 2 - 1
    masked, mask = masked_input(image, 0.4)
    without.eval(), with_attention.eval()
    assert torch.equal(with_attention(masked, mask), without(masked, mask))  # zero-initialised output
    torch.nn.init.normal_(with_attention.up[0][-1][-1].weight, 0, 0.02)  # a trained model's last layer is not 0
    with_attention(masked, mask).mean().backward()
    assert with_attention.attention.out.weight.grad.abs().sum() > 0  # ... but it learns

    # The layer alone: a hole position whose 3x3 patch matches one known patch copies that patch's feature.
    layer = ContextualAttention(2)
    torch.nn.init.eye_(layer.out.weight[:, :, 0, 0])
    features = torch.zeros(1, 2, 8, 8)
    features[0, 0, :, :4] = 1.0  # left half: channel 0; right half: channel 1
    features[0, 1, :, 4:] = 1.0
    hole = torch.zeros(1, 1, 8, 8)
    hole[..., :, 1:7] = 1  # known: the first and last columns
    out = layer(features, hole)
    assert torch.equal(out[..., 0], features[..., 0]) and torch.equal(out[..., 7], features[..., 7])  # known: kept
    assert out[0, 0, 4, 2] > 1.9 and out[0, 1, 4, 2] < 0.1  # left-half hole pixel: + the left column's feature
    assert out[0, 1, 4, 5] > 1.9 and out[0, 0, 4, 5] < 0.1


def test_the_shipped_diffusion_baseline_gives_the_fill_it_gave_before_the_refactor():
    from utils.loading import SHIPPED_DIFFUSION, diffusion_fill, load_diffusion_model
    model, config, schedule = load_diffusion_model(SHIPPED_DIFFUSION)
    size = config["image_size"]
    first = load_eval_image(ROOT / "data/scenery/test/mate_yellow_flower.jpg", size)
    second = load_eval_image(ROOT / "data/scenery/test/lomiri_picos_mountains.jpg", size)
    combined, mask = compose_two(first, second, config["crop_ratio"])
    fill = diffusion_fill(model, schedule, "cpu", "ddim", 3, seed=0, progress=False)  # 3 DDIM steps, seed 0
    out = to_uint8(fill(combined[None], mask[None])[0]).permute(1, 2, 0).numpy()
    stored = np.asarray(Image.open(ROOT / "tests/data/shipped_diffusion_eval_2_fill.png"))
    diff = np.abs(out.astype(int) - stored.astype(int))
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-3  # bit-identical where it was stored

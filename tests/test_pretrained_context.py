"""Pretrained context in the generator's encoder (GeneratorConfig.context_features, --context_features): frozen
EfficientNet-Lite0 maps of the start image, projected by zero-initialised 1x1 convolutions and added at S/4-S/32."""
import pytest
import torch

from data.masks import masked_input
from models import GeneratorConfig, UNetGenerator
from models.effnet import EfficientNetLite0


def _pair():
    torch.manual_seed(0)
    plain = UNetGenerator(GeneratorConfig(64, 8)).eval()
    with_context = UNetGenerator(GeneratorConfig(64, 8, context_features=True), EfficientNetLite0()).eval()
    missing, unexpected = with_context.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and missing and all(k.startswith("pretrained_context.project.") for k in missing)
    return plain, with_context


def test_the_context_starts_as_a_no_op_at_the_encoder_widths():
    plain, with_context = _pair()
    image = torch.rand(2, 3, 64, 64) * 2 - 1
    masked, mask = masked_input(image, 0.4)
    with torch.no_grad():
        assert torch.equal(plain(masked, mask), with_context(masked, mask))
        maps = with_context.pretrained_context(torch.rand(2, 3, 64, 64) * 2 - 1)
    # encoder levels 1-4 of ngf 8: 16, 32, 64, 64 channels at 16, 8, 4, 2 px
    assert [tuple(m.shape[1:]) for m in maps] == [(16, 16, 16), (32, 8, 8), (64, 4, 4), (64, 2, 2)]


def test_context_upsample_shows_the_feature_network_the_start_image_at_twice_its_size():
    torch.manual_seed(0)
    network = EfficientNetLite0()
    calls = []
    original = network.features
    network.features = lambda x, stages: calls.append(tuple(x.shape)) or original(x, stages)
    plain = UNetGenerator(GeneratorConfig(64, 8, context_features=True), network).eval()
    doubled = UNetGenerator(GeneratorConfig(64, 8, context_features=True, context_upsample=2), network).eval()
    start = torch.rand(2, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        one, two = plain.pretrained_context(start), doubled.pretrained_context(start)
    assert calls == [(2, 3, 64, 64), (2, 3, 128, 128)]
    # the same encoder sizes either way (the 2S maps average-pooled by 2), and the projections differ in what they see
    assert [m.shape for m in one] == [m.shape for m in two]
    for layer in (plain, doubled):
        torch.nn.init.normal_(layer.pretrained_context.project[0].weight, 0, 0.1)
    with torch.no_grad():
        doubled.pretrained_context.project.load_state_dict(plain.pretrained_context.project.state_dict())
        assert not torch.allclose(plain.pretrained_context(start)[0], doubled.pretrained_context(start)[0])
    with pytest.raises(ValueError, match="context_upsample"):
        GeneratorConfig(64, 8, context_upsample=2)
    with pytest.raises(ValueError, match="context_upsample"):
        GeneratorConfig(64, 8, context_features=True, context_upsample=3)


def test_the_feature_network_stays_frozen_in_eval_mode_and_out_of_the_state_dict():
    _, with_context = _pair()
    with_context.train()
    features = with_context.pretrained_context.features
    assert not features.training and not any(p.requires_grad for p in features.parameters())
    assert not any(".features." in k for k in with_context.state_dict())  # the pip package holds those
    before = {k: v.clone() for k, v in features.state_dict().items()}
    last = [m for m in with_context.up[0].modules() if isinstance(m, torch.nn.Conv2d)][-1]
    torch.nn.init.normal_(last.weight, 0, 0.05)  # a trained model's last layer is not the harmonic start's zero
    image = torch.rand(2, 3, 64, 64) * 2 - 1
    masked, mask = masked_input(image, 0.4)
    out = with_context(masked, mask)
    (out * torch.randn_like(out)).sum().backward()
    projections = with_context.pretrained_context.project.parameters()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in projections)
    assert all(p.grad is None for p in features.parameters())
    assert all(torch.equal(v, before[k]) for k, v in features.state_dict().items())  # BatchNorm statistics too


def test_the_context_changes_the_fill_once_its_projections_are_trained():
    _, with_context = _pair()
    image = torch.rand(2, 3, 64, 64) * 2 - 1
    masked, mask = masked_input(image, 0.4)
    last = [m for m in with_context.up[0].modules() if isinstance(m, torch.nn.Conv2d)][-1]
    torch.nn.init.normal_(last.weight, 0, 0.05)
    with torch.no_grad():
        before = with_context(masked, mask)
        torch.nn.init.normal_(with_context.pretrained_context.project[2].weight, 0, 0.1)
        after = with_context(masked, mask)
    hole = mask.expand_as(before) > 0.5
    assert not torch.allclose(before[hole], after[hole]) and torch.equal(before[~hole], after[~hole])


def test_without_the_feature_network_it_cannot_be_built_and_small_sizes_are_refused():
    with pytest.raises(ValueError, match="context_network"):
        UNetGenerator(GeneratorConfig(64, 8, context_features=True))
    with pytest.raises(ValueError, match="image_size must be >= 32"):
        GeneratorConfig(16, 8, context_features=True)
    assert GeneratorConfig.from_flags({"image_size": 64, "ngf": 8}).context_features is False  # older checkpoints


def test_init_from_adds_the_context_and_a_resumed_run_is_the_same_run(data, tmp_path):
    import main as gan
    from utils.loading import load_generator
    from tests.helpers import tiny_gan_args, train_straight_and_resumed
    from utils.errors import InputError

    gan.main(tiny_gan_args(data, tmp_path / "a"))
    source = str(tmp_path / "a" / "checkpoint_epoch_1.pth")
    straight, split = train_straight_and_resumed(data, tmp_path, "--init_from", source, "--context_features")
    assert straight["model_args"]["context_features"] and straight["config"]["context_features"]
    projections = [v for k, v in straight["generator"].items() if k.startswith("pretrained_context.project.")]
    assert len(projections) == 8 and all(p.abs().sum() > 0 for p in projections)  # trained from zero
    assert not any(".features." in k for k in straight["generator"])
    for key, value in straight["generator"].items():
        assert torch.equal(value, split["generator"][key]), f"generator.{key} differs after resume"
    generator, _ = load_generator(tmp_path / "straight" / "checkpoint_epoch_2.pth")  # rebuilt with its network
    assert generator.pretrained_context is not None and not generator.pretrained_context.features.training
    with pytest.raises(InputError, match="--context_features"):  # the context may be added, not dropped
        gan.main(tiny_gan_args(data, tmp_path / "c", "--init_from", str(tmp_path / "straight" / "checkpoint_epoch_2.pth")))

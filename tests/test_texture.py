"""The generator's noise-fed texture head and the frequency-separated reconstruction losses."""
import pytest
import torch

from data.masks import masked_input
from losses import lowpass
from models import GeneratorConfig, UNetGenerator
from tests.helpers import tiny_gan_args, tiny_gan_train_argv


def texture_generator(texture_noise: int = 4, size: int = 32) -> UNetGenerator:
    return UNetGenerator(GeneratorConfig(size, ngf=8, norm="group", upsampling="resize", res_blocks=1, harmonic=True,
                                         texture_noise=texture_noise))


def test_texture_head_starts_as_a_no_op_and_keeps_known_pixels():
    torch.manual_seed(0)
    with_head, without = texture_generator(4), texture_generator(0)
    missing, unexpected = with_head.load_state_dict(without.state_dict(), strict=False)
    assert unexpected == [] and missing and all(k.startswith("texture.") for k in missing)
    image = torch.rand(2, 3, 32, 32) * 2 - 1
    masked, mask = masked_input(image, 0.4)
    with_head.eval(), without.eval()
    assert torch.equal(with_head(masked, mask), without(masked, mask))  # zero last layer: the old model exactly
    torch.nn.init.normal_(with_head.texture[-1].weight, 0, 0.1)
    out = with_head(masked, mask)
    assert out.shape == (2, 3, 32, 32) and out.abs().max() <= 1
    known = (1 - mask).expand_as(out).bool()
    assert torch.equal(out[known], image[known]) and not torch.equal(out, without(masked, mask))


def test_texture_noise_is_fixed_in_eval_and_random_in_train():
    torch.manual_seed(0)
    generator = texture_generator(4)
    torch.nn.init.normal_(generator.texture[-1].weight, 0, 0.1)
    masked, mask = masked_input(torch.rand(1, 3, 32, 32) * 2 - 1, 0.4)
    generator.eval()
    assert torch.equal(generator(masked, mask), generator(masked, mask))  # eval_2 twice: the same fill
    generator.train()
    torch.manual_seed(1)
    first = generator(masked, mask)
    assert not torch.equal(first, generator(masked, mask))  # new noise every training step
    torch.manual_seed(1)
    assert torch.equal(first, generator(masked, mask))  # ... drawn from torch's RNG (resume stays exact)


def test_texture_head_gets_gradients_and_needs_the_harmonic_start():
    generator = texture_generator(4)
    masked, mask = masked_input(torch.rand(2, 3, 32, 32) * 2 - 1, 0.4)
    generator(masked, mask).mean().backward()
    assert generator.texture[-1].weight.grad.abs().sum() > 0  # zero-initialised, but it learns
    with pytest.raises(ValueError, match="harmonic"):
        GeneratorConfig(32, ngf=8, harmonic=False, texture_noise=4)


def test_lowpass_keeps_the_mean_and_removes_the_finest_detail():
    torch.manual_seed(0)
    x = torch.rand(2, 3, 32, 32)
    assert torch.equal(lowpass(x, 0), x)
    checker = (torch.arange(32)[:, None] + torch.arange(32)[None, :]) % 2 * 2.0 - 1  # period 2: the Nyquist grid
    flat = torch.full((1, 3, 32, 32), 0.3)
    assert torch.allclose(lowpass(flat, 1.0), flat, atol=1e-6)
    assert lowpass(checker.expand(1, 3, 32, 32), 1.0).abs().max() < 0.02  # 0.7 % response in theory
    smooth = torch.linspace(-1, 1, 32).expand(1, 3, 32, 32)
    assert (lowpass(smooth, 1.0) - smooth)[..., 4:-4].abs().max() < 1e-5  # a linear ramp passes unchanged


def test_init_from_adds_a_texture_head_to_a_model_without_one(data, tmp_path):
    import main as gan
    from utils.checkpoint import load_checkpoint
    from utils.errors import InputError

    gan.main(tiny_gan_args(data, tmp_path / "a", "--texture_noise", "0"))
    source = tmp_path / "a" / "checkpoint_epoch_1.pth"
    gan.main(tiny_gan_args(data, tmp_path / "b", "--init_from", str(source), "--texture_noise", "4", "--recon_lowpass", "1"))
    b = load_checkpoint(tmp_path / "b" / "checkpoint_epoch_1.pth", kinds=("gan",))
    assert b["config"]["texture_noise"] == 4 and b["config"]["recon_lowpass"] == 1
    assert b["generator"]["texture.4.weight"].abs().sum() > 0  # the new head trained
    # Export with a stronger texture head: the last layer scaled, the strength recorded in the config.
    trained = tmp_path / "b" / "checkpoint_epoch_1.pth"
    gan.main(gan.parse_args(["--mode", "train", "--checkpoint_path", str(trained), "--epochs", "1",
                             "--export", str(tmp_path / "g.pth"), "--texture_scale", "1.5"]))
    exported = load_checkpoint(tmp_path / "g.pth", kinds=("gan_generator",))
    assert exported["config"]["texture_scale"] == 1.5
    ema_head = b["generator_ema"]["module"]["texture.4.weight"]
    assert torch.allclose(exported["generator"]["texture.4.weight"].float(), 1.5 * ema_head, atol=1e-3)
    with pytest.raises(SystemExit):  # the strength is for exports only
        gan.parse_args(["--mode", "train", "--texture_scale", "1.5"])
    with pytest.raises(InputError, match="texture head"):  # a model without one has nothing to scale
        gan.main(gan.parse_args(["--mode", "train", "--checkpoint_path", str(source), "--epochs", "1",
                                 "--export", str(tmp_path / "h.pth"), "--texture_scale", "1.5"]))
    with pytest.raises(InputError, match="--texture_noise 4"):  # a head can be added, not resized
        gan.main(tiny_gan_args(data, tmp_path / "c", "--init_from", str(tmp_path / "b" / "checkpoint_epoch_1.pth"),
                      "--texture_noise", "2"))


def test_highpass_detail_loss_ignores_coarse_differences_and_asks_for_fine_ones():
    from losses import detail_loss
    torch.manual_seed(0)
    fine = (torch.rand(1, 3, 64, 64) * 2 - 1) * 0.3  # pixel-level grain
    coarse = torch.nn.functional.interpolate(torch.rand(1, 3, 8, 8) * 2 - 1, size=64, mode="bilinear")
    target = coarse + fine
    masked, mask = masked_input(target, 0.4)
    other_coarse = torch.nn.functional.interpolate(torch.rand(1, 3, 8, 8) * 2 - 1, size=64, mode="bilinear")
    # Another coarse layout, the same grain elsewhere: the high band matches.
    swapped = other_coarse + torch.roll(fine, shifts=(2, 3), dims=(2, 3))
    assert detail_loss(swapped, target, mask, levels=1, highpass_sigma=1.0) < 0.1
    assert detail_loss(coarse, target, mask, levels=1, highpass_sigma=1.0) > 0.8  # no grain: most of it missing
    pred = coarse.clone().requires_grad_()
    detail_loss(pred, target, mask, levels=1, highpass_sigma=1.0).backward()
    assert pred.grad.abs().sum() > 0


def test_hole_total_term_asks_for_the_amount_of_detail_wherever_it_is():
    from losses import detail_loss
    torch.manual_seed(0)
    grain = (torch.rand(1, 3, 64, 64) * 2 - 1) * 0.3
    left, right = torch.zeros(1, 1, 64, 64), torch.zeros(1, 1, 64, 64)
    left[..., 16:48, 8:30], right[..., 16:48, 34:56] = 1, 1  # two equal areas inside the hole
    target, moved = grain * left, torch.roll(grain * left, shifts=26, dims=3)  # the same grain, moved right
    _, mask = masked_input(target, 0.4)
    flat = torch.zeros_like(target)

    def total_term(pred):
        return (detail_loss(pred, target, mask, levels=1, highpass_sigma=1.0, hole_total=True)
                - detail_loss(pred, target, mask, levels=1, highpass_sigma=1.0))
    assert detail_loss(moved, target, mask, levels=1, highpass_sigma=1.0) > 1  # locally all wrong ...
    assert total_term(moved) < 0.05  # ... but the hole holds the truth's amount of detail
    assert total_term(flat) == pytest.approx(1.0, abs=0.01)  # none of it


def test_hole_mse_counts_only_the_hole_and_logs_in_training(data, tmp_path):
    import csv

    import main as gan
    from losses import hole_mse
    pred, target = torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 8)
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., :4, :] = 1
    pred[..., :4, :] = 0.5  # error 0.5 on the hole
    pred[..., 4:, :] = 9.0  # known pixels: ignored
    assert hole_mse(pred, target, mask) == pytest.approx(0.25)
    gan.main(gan.parse_args(tiny_gan_train_argv(data, tmp_path, "--lambda_mse", "10")))
    with open(tmp_path / "train" / "losses.csv", newline="") as f:
        assert all(float(r["G_MSE"]) > 0 for r in csv.DictReader(f))


def test_scale_texture_scales_the_heads_contribution_linearly():
    from utils.loading import scale_texture
    torch.manual_seed(0)
    generator = texture_generator(4).eval()
    torch.nn.init.normal_(generator.texture[-1].weight, 0, 0.05)
    masked, mask = masked_input(torch.rand(1, 3, 32, 32) * 1.6 - 0.8, 0.4)
    outs = []
    for scale in (0.0, 1.0, 2.0):
        copy = texture_generator(4).eval()
        copy.load_state_dict(generator.state_dict())
        outs.append(torch.atanh(scale_texture(copy, scale)(masked, mask).double().clamp(-0.999, 0.999)))
    hole = mask.expand_as(outs[0]).bool()
    step1, step2 = (outs[1] - outs[0])[hole], (outs[2] - outs[1])[hole]
    assert step1.abs().mean() > 1e-3 and torch.allclose(step1, step2, atol=1e-3)  # out = tanh(base + scale * head)


def test_detail_variants_pick_the_band_and_the_hole_total():
    import main as gan
    from losses import detail_loss
    from utils.errors import InputError
    torch.manual_seed(0)
    image = torch.rand(2, 3, 64, 64) * 2 - 1
    masked, mask = masked_input(image, 0.4)
    fake = mask * 0.2 + (1 - mask) * image

    def term(*flags):
        return gan.detail_term(fake, image, mask, gan.parse_args(["--mode", "train", *flags]))
    assert term() == detail_loss(fake, image, mask)  # auto without --recon_lowpass: the whole image, 2 scales
    band = detail_loss(fake, image, mask, levels=1, highpass_sigma=1.0)
    assert term("--recon_lowpass", "1", "--detail_variant", "highpass") == band
    total = detail_loss(fake, image, mask, levels=1, highpass_sigma=1.0, hole_total=True)
    assert term("--recon_lowpass", "1") == total and total > band  # auto with it: band + the hole's total
    with pytest.raises(InputError, match="--recon_lowpass"):
        term("--detail_variant", "highpass")


def test_eval_fill_does_not_depend_on_the_batch():
    torch.manual_seed(0)
    generator = texture_generator(4).eval()
    torch.nn.init.normal_(generator.texture[-1].weight, 0, 0.1)
    masked, mask = masked_input(torch.rand(3, 3, 32, 32) * 2 - 1, 0.4)
    alone = generator(masked[1:2], mask[1:2])
    # eval (batches) = eval_2 (one image), up to the harmonic start's solver tolerance (1e-3, batch-wide);
    # noise drawn per image of the batch differs by ~0.05 here.
    assert (generator(masked, mask)[1:2] - alone).abs().max() < 2e-3


def test_init_from_an_export_can_drop_its_texture_head(data, tmp_path):
    import main as gan
    from utils.loading import load_generator
    from utils.checkpoint import load_checkpoint

    gan.main(gan.parse_args(tiny_gan_train_argv(data, tmp_path / "a", "--texture_noise", "2", "--recon_lowpass", "1",
                                                "--export", str(tmp_path / "g.pth"))))
    with_head, _ = load_generator(tmp_path / "g.pth")
    torch.nn.init.normal_(with_head.texture[-1].weight, 0, 0.1)  # a head that changes the fill
    gan.export_generator(with_head, load_checkpoint(tmp_path / "g.pth", kinds=("gan_generator",))["config"],
                         tmp_path / "g.pth")
    gan.main(gan.parse_args(tiny_gan_train_argv(data, tmp_path / "b", "--init_from", str(tmp_path / "g.pth"),
                                                "--texture_noise", "0", "--lr", "0", "--ema_decay", "0")))
    b = load_checkpoint(tmp_path / "b" / "checkpoint_epoch_1.pth", kinds=("gan",))
    assert b["config"]["texture_noise"] == 0 and not any(k.startswith("texture.") for k in b["generator"])
    source = load_checkpoint(tmp_path / "g.pth", kinds=("gan_generator",))["generator"]
    for key, value in b["generator"].items():  # lr 0: the U-Net is the export's, minus the head
        assert torch.equal(value, source[key].float()), key

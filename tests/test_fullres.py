"""utils/fullres.py: fills at any output size keep the known squares exactly and blend only a narrow band."""
import numpy as np
import pytest
import torch

from data.masks import distance_to_known, gap_mask, known_squares, mirror_into_known
from models.baselines import BASELINES
from utils.fullres import (BLENDS, DEFAULT_BLEND, MAX_BAND_FRACTION, band_width, fill_at_resolution,
                           grey_fine_detail, model_input, resize)


def test_gap_geometry_helpers():
    squares = known_squares(10, 0.4)
    assert squares == ((6, 0, 4), (0, 6, 4))
    distance = distance_to_known(10, 0.4)
    assert np.array_equal(distance == 0, gap_mask(10, 0.4)[0].numpy() == 0)
    assert distance[5, 0] == 1 and distance[6, 4] == 1 and distance[5, 4] == pytest.approx(2 ** 0.5)
    rows, cols = mirror_into_known(10, 0.4)
    assert (rows[5, 1], cols[5, 1]) == (6, 1) and (rows[7, 4], cols[7, 4]) == (7, 3)  # reflected across the edge
    assert (rows[8, 2], cols[8, 2]) == (8, 2)  # known pixels map to themselves


@pytest.mark.parametrize("blend", sorted(BLENDS))
@pytest.mark.parametrize("size", [40, 150])
def test_known_squares_exact_and_band_narrow(blend, size):
    torch.manual_seed(0)
    known = torch.rand(2, 3, size, size) * 2 - 1
    masked, mask = model_input(known, 32, 0.4)
    out = fill_at_resolution(BASELINES["mean"], masked, mask, known, 0.4, blend=blend)
    hole = gap_mask(size, 0.4)
    assert out.shape == known.shape and out.abs().max() <= 1
    assert torch.equal(out * (1 - hole), known * (1 - hole))
    plain = fill_at_resolution(BASELINES["mean"], masked, mask, known, 0.4, blend="none")
    changed = (out != plain).any(dim=1)[0]
    width = band_width(size, 32)
    assert width <= MAX_BAND_FRACTION * size
    assert (torch.from_numpy(distance_to_known(size, 0.4))[changed] <= width).all()  # only the band


def test_model_size_output_is_the_models_own():
    known = torch.rand(1, 3, 32, 32) * 2 - 1
    masked, mask = model_input(known, 32, 0.4)
    assert torch.equal(fill_at_resolution(BASELINES["mean"], masked, mask, known, 0.4),
                       BASELINES["mean"](masked, mask))
    assert DEFAULT_BLEND in BLENDS


def test_an_upsampled_fill_keeps_its_grains_brightness_and_drops_its_colour():
    from utils.metrics import chroma_share
    torch.manual_seed(0)
    rows, cols = torch.meshgrid(torch.arange(32), torch.arange(32), indexing="ij")
    checker = ((rows + cols) % 2 * 2 - 1).float()  # a pixel-scale grain
    tint = torch.stack([checker, -2 * checker, checker]) * 0.1  # magenta against green: brightness constant
    bright = checker.expand(3, 32, 32) * 0.1  # a grey grain
    known = torch.rand(1, 3, 96, 96) * 2 - 1
    masked, mask = model_input(known, 32, 0.4)
    hole = gap_mask(96, 0.4)[None]
    inner = torch.from_numpy(distance_to_known(96, 0.4) > 16)  # off the squares, whose colour edges blur in
    for grain, coloured in ((tint, True), (bright, False)):
        def fill(masked, mask):
            return torch.where(mask > 0.5, grain[None].expand_as(masked), masked)
        out = fill_at_resolution(fill, masked, mask, known, 0.4, blend="none")
        plain = resize(fill(masked, mask), 96)  # the upsampling alone, as before
        if coloured:  # the colour grain is gone, not turned into stripes
            assert chroma_share((plain + 1) / 2, hole) > 0.9
            assert out[0][:, inner].abs().max() < 0.01
        else:  # a grey grain passes as it is
            assert torch.allclose(out[0][:, inner], plain.clamp(-1, 1)[0][:, inner], atol=1e-4)
    assert grey_fine_detail(tint[None]).std(dim=1).max() < 1e-3  # no colour left in the grain
    # at the model's own size the fill is left alone
    small = torch.rand(1, 3, 32, 32) * 2 - 1
    assert torch.equal(fill_at_resolution(lambda m, k: small, masked, mask, small, 0.4), small)

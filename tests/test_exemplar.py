"""The exemplar texture layer (models/exemplar.py): band-passed known detail, laid in cross-faded patches, gated."""
import pytest
import torch

from data.masks import masked_input
from models import GeneratorConfig, UNetGenerator
from models.exemplar import (OVERLAP, PATCH, RMS_FLOOR, ExemplarTexture, band_rms, bands, coarse_band, colour_scores,
                             grid_cells, guided_corners, known_detail_prior, masked_blur, normalise_patches,
                             patch_canvas, pattern_scores, peakiness, coherence, sine_window, source_regions,
                             flatten_detail, local_spectral_canvas, match_marginals, spectral_canvas, spot_kernel,
                             window_regions)


def test_the_blur_of_the_known_pixels_ignores_the_hole():
    image = torch.rand(1, 3, 32, 32)
    _, mask = masked_input(image, 0.4)
    known = 1.0 - mask
    other = image.clone()
    other[mask.expand_as(image) > 0.5] = 5.0  # whatever the hole holds
    blurred, blurred_other = masked_blur(image, known, 2.0), masked_blur(other, known, 2.0)
    assert torch.allclose(blurred * known, blurred_other * known, atol=1e-5)
    flat = torch.full_like(image, 0.3)  # a constant stays constant up to the region's edge
    assert torch.allclose(masked_blur(flat, known, 2.0)[known.expand_as(flat) > 0.5], torch.tensor(0.3), atol=1e-5)


def test_the_sources_are_the_known_pixels_of_each_half():
    _, mask = masked_input(torch.zeros(1, 3, 40, 40), 0.4)  # squares of 16 px
    regions = source_regions(mask)
    assert regions.shape == (1, 2, 40, 40)
    assert regions[0, 0, 24:, :16].eq(1).all() and regions[0, 0].sum() == 16 * 16  # bottom-left square
    assert regions[0, 1, :16, 24:].eq(1).all() and regions[0, 1].sum() == 16 * 16  # top-right square


def test_sine_windows_cross_fade_with_constant_energy():
    window = sine_window(PATCH, OVERLAP)
    stride = PATCH - OVERLAP
    energy = torch.zeros(3 * stride + OVERLAP)
    for start in range(0, 3 * stride, stride):
        energy[start:start + PATCH] += window ** 2
    assert torch.allclose(energy[OVERLAP:3 * stride], torch.ones(3 * stride - OVERLAP), atol=1e-6)


def test_the_canvas_copies_the_source_band_with_its_energy_and_covers_the_image():
    torch.manual_seed(0)
    size = 64
    image = torch.randn(2, 3, size, size) * 0.3
    _, mask = masked_input(image, 0.4)
    region = source_regions(mask)[:, :1]  # the bottom-left square (25 px)
    band = bands(image, region)
    assert band.shape == (2, 6, size, size) and band[(region == 0).expand_as(band)].eq(0).all()
    canvas = patch_canvas(band, region, torch.rand(grid_cells(size) ** 2), (3, 5))
    assert canvas.shape == band.shape
    source_std = band[:, :, size - 25:, :25].std()
    assert 0.8 < canvas.std() / source_std < 1.2  # the cross-fades keep the texture's energy
    assert (canvas.abs().amax(dim=1) > 0).float().mean() > 0.99  # no empty cell anywhere
    # Away from the cross-fades a canvas block is a block of the source band, copied, not resampled: at
    # offset (0, 0) the output's first PATCH - 2 OVERLAP rows and columns lie inside one patch's flat middle.
    canvas = patch_canvas(band, region, torch.rand(grid_cells(size) ** 2), (0, 0))
    flat = PATCH - 2 * OVERLAP
    block = canvas[0, :, :flat, :flat]
    assert any(torch.equal(block, band[0, :, y:y + flat, x:x + flat])
               for y in range(size - 25, size - flat + 1) for x in range(0, 25 - flat + 1))


def test_a_mask_without_room_for_a_patch_gives_an_empty_canvas():
    image = torch.rand(1, 3, 32, 32)
    _, mask = masked_input(image, 0.2)  # squares of 6 px: no 16-px patch fits
    layer = ExemplarTexture(4).eval()
    assert layer.canvas(image, mask).eq(0).all()


@pytest.mark.parametrize("size, options", [(32, {}), (64, {"exemplar_coarse": True, "exemplar_prior": True})])
def test_the_layer_starts_as_a_no_op_learns_and_fills_reproducibly(size, options):
    torch.manual_seed(0)
    without = UNetGenerator(GeneratorConfig(size, 8, texture_noise=2))
    with_exemplar = UNetGenerator(GeneratorConfig(size, 8, texture_noise=2, exemplar=True, **options))
    missing, unexpected = with_exemplar.load_state_dict(without.state_dict(), strict=False)
    assert unexpected == [] and missing and all(k.startswith("exemplar.") for k in missing)
    masked, mask = masked_input(torch.rand(2, 3, size, size) * 2 - 1, 0.5)  # squares of S/2 px
    without.eval(), with_exemplar.eval()
    assert torch.equal(with_exemplar(masked, mask), without(masked, mask))  # zero-initialised gates
    torch.nn.init.normal_(with_exemplar.exemplar.gate.weight, 0, 0.1)
    torch.nn.init.constant_(with_exemplar.exemplar.gate.bias, 0.5)
    filled = with_exemplar(masked, mask)
    assert not torch.equal(filled, without(masked, mask))
    # Eval: an image's copied detail is the same alone and in a batch (checked on the layer: a random decoder's
    # features themselves may differ by ~1e-3 between batch sizes).
    layer = with_exemplar.exemplar
    features = torch.randn(2, layer.gate.in_channels - layer.bands * layer.prior, size, size)
    assert torch.allclose(layer(masked, mask, features)[:1], layer(masked[:1], mask[:1], features[:1]), atol=1e-5)
    assert torch.equal(filled, with_exemplar(masked, mask))  # and the same every time
    assert torch.equal(filled * (1 - mask), masked * (1 - mask))  # the known pixels are kept
    with_exemplar.train()
    with_exemplar(masked, mask).mean().backward()
    assert with_exemplar.exemplar.gate.weight.grad.abs().sum() > 0


def test_the_coarse_band_is_laid_in_larger_patches_and_the_prior_feeds_the_gates():
    torch.manual_seed(0)
    size = 128  # squares of 51 px: 25 px at half resolution, room for the coarse band's patches
    rows = torch.arange(size, dtype=torch.float32)
    waves = torch.sin(2 * torch.pi * rows / 24).view(1, 1, size, 1) * torch.sin(2 * torch.pi * rows / 30)
    image = 0.3 * waves.expand(2, 3, size, size) + 0.1 * torch.randn(2, 3, size, size)  # coarse waves + fine grain
    masked, mask = masked_input(image, 0.4)
    layer = ExemplarTexture(4, coarse=True, prior=True).eval()
    canvas = layer.canvas(masked, mask).view(2, 2, 3, 3, size, size)  # (B, sources, bands, RGB, S, S)
    assert layer.gate.in_channels == 4 + 3 and layer.gate.out_channels == 6

    def fine_share(x):  # the share of a canvas's energy finer than G(1)
        return (x - masked_blur(x, torch.ones_like(x[:, :1]), 1.0)).pow(2).mean() / x.pow(2).mean()
    fine, coarse = canvas[:, :, 0].flatten(0, 1), canvas[:, :, 2].flatten(0, 1)
    assert fine_share(coarse) < 0.05 < 0.5 < fine_share(fine)  # the waves, not the grain
    assert coarse.std() > 0.5 * (coarse_band(masked, 1 - mask)).std()  # laid with its energy
    assert (coarse.abs().amax(dim=1) > 0).float().mean() > 0.99  # the whole image covered
    features = torch.randn(2, 4, size, size)
    torch.nn.init.normal_(layer.gate.weight, 0, 0.1)
    layer.train()
    layer(masked, mask, features).pow(2).mean().backward()
    assert layer.gate.weight.grad[:, 4:].abs().sum() > 0  # the prior's input channels learn too


def test_the_relative_prior_is_scale_free_and_bounded():
    torch.manual_seed(0)
    image = torch.randn(1, 3, 64, 64) * 0.05
    image[:, :, 38:, :26] *= 6.0
    masked, mask = masked_input(image, 0.4)
    absolute, relative = known_detail_prior(masked, mask, coarse=True), known_detail_prior(masked, mask, coarse=True,
                                                                                             relative=True)
    assert absolute.shape == relative.shape == (1, 3, 64, 64)
    assert torch.allclose(known_detail_prior(3 * masked, mask, coarse=True), 3 * absolute, rtol=1e-4, atol=1e-6)
    assert torch.allclose(known_detail_prior(3 * masked, mask, coarse=True, relative=True), relative, atol=1e-4)
    assert relative.max() <= 4.0 and relative[0, :, 40, 30].gt(1).all() and relative[0, :, 22, 36].lt(1).all()


def test_exemplar_scales_need_the_bands_they_scale():
    from utils.loading import scale_exemplar
    from utils.errors import InputError
    plain = UNetGenerator(GeneratorConfig(32, 8, texture_noise=2, exemplar=True))
    with pytest.raises(InputError, match="--exemplar_coarse"):
        scale_exemplar(plain, 1, 1, 2)
    coarse = UNetGenerator(GeneratorConfig(32, 8, texture_noise=2, exemplar=True, exemplar_coarse=True))
    torch.nn.init.constant_(coarse.exemplar.gate.bias, 1.0)
    scale_exemplar(coarse, 2, 3)  # two scales: the coarse band keeps its strength
    assert coarse.exemplar.gate.bias.tolist() == [2.0, 3.0, 1.0, 2.0, 3.0, 1.0]


def test_training_draws_come_from_the_global_rng():
    layer = ExemplarTexture(4).train()
    masked, mask = masked_input(torch.randn(1, 3, 48, 48), 0.5)
    torch.manual_seed(1)
    first = layer.canvas(masked, mask)
    torch.manual_seed(1)
    assert torch.equal(first, layer.canvas(masked, mask))  # seeded: reproducible (checkpoints keep the RNG)
    assert not torch.equal(first, layer.canvas(masked, mask))  # ... and a new draw every step


def test_exemplar_needs_the_harmonic_start():
    with pytest.raises(ValueError, match="harmonic"):
        GeneratorConfig(harmonic=False, texture_noise=0, exemplar=True)
    with pytest.raises(ValueError, match="temperature"):
        GeneratorConfig(exemplar=True, exemplar_guide=-1)
    for option in ("exemplar_normalise", "exemplar_coarse", "exemplar_prior"):
        with pytest.raises(ValueError, match="exemplar=True"):
            GeneratorConfig(**{option: True})


def test_normalised_patches_take_the_sources_rms_and_smooth_ones_are_raised_by_a_bounded_gain():
    patches = torch.randn(1, 6, 3, PATCH, PATCH)  # 2 bands x 3 channels, 3 patches
    patches[:, :, 1] *= 4.0  # a strong patch
    patches[:, :, 2] *= 0.01  # a nearly flat one (sky)
    reference = torch.tensor([[0.5, 1.5]])  # per band (RMS_FLOOR x 1.5 < the first patch's RMS, about 1)
    out = normalise_patches(patches, reference).view(1, 2, 3, 3, -1)
    rms = out.pow(2).mean(dim=(2, 4)).sqrt()  # (1, bands, patches)
    assert torch.allclose(rms[0, :, :2], reference.T.expand(2, 2), rtol=1e-5)  # both at the source's level
    gain = out[0, :, :, 2] / patches.view(1, 2, 3, 3, -1)[0, :, :, 2]
    assert torch.allclose(gain, (1 / RMS_FLOOR) * torch.ones_like(gain))  # raised by 1 / floor, not to the level
    assert normalise_patches(torch.zeros_like(patches), reference).eq(0).all()


def test_a_normalised_canvas_lays_even_detail_over_a_source_of_uneven_contrast():
    torch.manual_seed(0)
    size = 96
    image = torch.randn(1, 3, size, size) * 0.05
    _, mask = masked_input(image, 0.5)  # bottom-left square: rows 48-95, columns 0-47
    image[:, :, :, 24:48] *= 2.0  # its right half has twice its left half's contrast (both above the floor)
    region = source_regions(mask)[:, :1]
    band = bands(image, region)
    fine_in_region = band[:, :3][region.expand(-1, 3, -1, -1) > 0]
    assert torch.allclose(band_rms(band, region)[:, 0], fine_in_region.pow(2).mean().sqrt(), rtol=1e-4)

    def cell_rms(canvas):  # RMS of the fine band in each cell's cross-fade-free middle (grid at offset 0)
        stride, flat = PATCH - OVERLAP, PATCH - 2 * OVERLAP
        return torch.stack([canvas[0, :3, y:y + flat, x:x + flat].pow(2).mean().sqrt()
                            for y in range(0, size - flat, stride) for x in range(0, size - flat, stride)])
    uniforms = torch.rand(grid_cells(size) ** 2)
    raw = cell_rms(patch_canvas(band, region, uniforms, (0, 0)))
    even = cell_rms(patch_canvas(band, region, uniforms, (0, 0), normalise=True))
    assert raw.std() / raw.mean() > 0.25  # patches of the weak and of the strong half
    # All at the source's level, up to a patch straddling the two halves (normalised as a whole).
    assert even.std() / even.mean() < 0.5 * raw.std() / raw.mean()
    layer = ExemplarTexture(4, normalise=True).eval()
    assert not torch.equal(layer.canvas(image, mask), ExemplarTexture(4).eval().canvas(image, mask))


def test_init_from_adds_the_layer_and_a_resumed_run_is_the_same_run(data, tmp_path):
    import main as gan
    from tests.helpers import tiny_gan_args, train_straight_and_resumed
    from utils.checkpoint import load_checkpoint
    from utils.errors import InputError

    gan.main(tiny_gan_args(data, tmp_path / "a"))
    source = str(tmp_path / "a" / "checkpoint_epoch_1.pth")
    # The layer with all its parts, its gates in an Adam group of their own (--lr_exemplar): the state to resume.
    added = ("--init_from", source, "--exemplar_texture", "--exemplar_coarse", "--exemplar_prior",
             "--lr_exemplar", "1e-3", "--lambda_placement", "1")
    straight, split = train_straight_and_resumed(data, tmp_path, *added)
    assert straight["model_args"]["exemplar"] and straight["config"]["exemplar_texture"]
    assert straight["generator"]["exemplar.gate.weight"].abs().sum() > 0  # the gates trained from zero
    assert "G_place" in (tmp_path / "split" / "train" / "losses.csv").read_text().splitlines()[0]
    groups = straight["opt_g"]["param_groups"]
    assert [g["lr"] for g in groups] == [2e-4, 1e-3] and len(groups[1]["params"]) == 2  # the gate's weight, bias
    for key, value in straight["generator"].items():
        assert torch.equal(value, split["generator"][key]), f"generator.{key} differs after resume"
    # Export with stronger mid- and coarse-band gates: those channels scaled (per source: fine, mid, coarse), the
    # scales recorded.
    trained = tmp_path / "straight" / "checkpoint_epoch_2.pth"
    gan.main(gan.parse_args(["--mode", "train", "--checkpoint_path", str(trained), "--epochs", "2",
                             "--export", str(tmp_path / "g.pth"), "--exemplar_scale", "1,2,3"]))
    exported = load_checkpoint(tmp_path / "g.pth", kinds=("gan_generator",))
    assert exported["config"]["exemplar_scale"] == [1.0, 2.0, 3.0]
    gate = exported["generator"]["exemplar.gate.bias"]
    ema_gate = straight["generator_ema"]["module"]["exemplar.gate.bias"]
    assert torch.allclose(gate.float(), ema_gate * torch.tensor([1.0, 2.0, 3.0] * 2), atol=1e-6)
    with pytest.raises(InputError, match="exemplar layer"):  # a model without one has nothing to scale
        gan.main(gan.parse_args(["--mode", "train", "--checkpoint_path", source, "--epochs", "1",
                                 "--export", str(tmp_path / "h.pth"), "--exemplar_scale", "1,2"]))
    with pytest.raises(InputError, match="--exemplar_texture"):  # a layer may be added, not dropped
        gan.main(tiny_gan_args(data, tmp_path / "c", "--init_from", str(tmp_path / "straight" / "checkpoint_epoch_2.pth")))


def test_guided_draws_follow_the_scores_and_never_take_an_invalid_corner():
    valid = torch.tensor([[True, True, False, True]])
    scores = torch.tensor([[[0.0, 50.0, 100.0, 0.0], [0.0, 0.0, 100.0, 50.0]]])  # corner 2: best but invalid
    uniforms = torch.rand(2, 4)
    assert guided_corners(valid, scores, uniforms).tolist() == [[1, 3]]
    flat = torch.zeros(1, 2000, 4)  # equal scores: every valid corner about equally often, never the invalid one
    counts = torch.bincount(guided_corners(valid, flat, torch.rand(2000, 4)).flatten(), minlength=4)
    assert counts[2] == 0 and all(500 < c < 850 for c in counts[[0, 1, 3]].tolist())


def test_guided_canvas_takes_patches_of_the_guides_colour():
    torch.manual_seed(0)
    size = 128
    image = torch.zeros(1, 3, size, size)
    bottom = slice(size - 51, size)  # the bottom-left known square (crop ratio 0.4): blue left, red right
    image[0, 2, bottom, :25], image[0, 0, bottom, 25:51] = 0.8, 0.8
    image[0, :, bottom, :25] += 0.05 * torch.randn(3, 51, 25)  # faint grain on the blue half
    image[0, :, bottom, 25:51] += 0.5 * torch.randn(3, 51, 26)  # strong grain on the red half
    masked, mask = masked_input(image, 0.4)
    region = source_regions(mask)[:, :1]
    band = bands(masked, region)[:, :3]  # the fine band: the grain, not the colour edge between the halves
    n, side = grid_cells(size), size - PATCH + 1
    red, blue = torch.zeros(1, 3, size, size), torch.zeros(1, 3, size, size)
    red[:, 0], blue[:, 2] = 0.8, 0.8
    strong = patch_canvas(band, region, torch.rand(n * n, side * side), (0, 0), colour_scores(masked, red, 0.1, (0, 0)))
    faint = patch_canvas(band, region, torch.rand(n * n, side * side), (0, 0), colour_scores(masked, blue, 0.1, (0, 0)))
    assert strong.std() > 4 * faint.std()  # red cells: the red half's strong grain; blue cells: the faint one
    with pytest.raises(ValueError, match="uniforms"):
        patch_canvas(band, region, torch.rand(n * n), (0, 0), colour_scores(masked, red, 0.1, (0, 0)))


def test_the_strength_probe_scores_each_gate_scale(data, tmp_path, capsys):
    from benchmarks.probe_exemplar_strength import main as probe, parse_args as probe_args
    from utils.loading import export_generator
    torch.manual_seed(0)
    generator = UNetGenerator(GeneratorConfig(64, 8, texture_noise=2, exemplar=True))
    torch.nn.init.normal_(generator.exemplar.gate.weight, 0, 0.05)  # a trained layer's gates are not 0
    torch.nn.init.constant_(generator.exemplar.gate.bias, 0.5)
    path = export_generator(generator, {"image_size": 64, "crop_ratio": 0.4}, tmp_path / "g.pth")
    probe(probe_args(["--test_dir", str(data / "test"), "--checkpoint", str(path), "--mid", "0,3"]))
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith(f"| {path}")]
    assert len(rows) == 2 and "1 / 0 / 1" in rows[0] and "1 / 3 / 1" in rows[1]
    sharpness = [float(row.split("|")[5]) for row in rows]
    assert sharpness[1] > sharpness[0]  # stronger copied detail: a sharper fill


def test_the_known_detail_prior_carries_each_squares_detail_into_the_hole():
    torch.manual_seed(0)
    image = torch.randn(1, 3, 64, 64) * 0.05
    image[:, :, 38:, :26] *= 6.0  # the bottom-left square (rows 38-63, columns 0-25) is six times as textured
    masked, mask = masked_input(image, 0.4)
    prior = known_detail_prior(masked, mask)
    assert prior.shape == (1, 2, 64, 64) and prior.min() >= 0
    hole = mask[0, 0] > 0.5
    inside = prior[0][:, hole]
    known = prior[0][:, ~hole]
    assert (inside <= known.amax(dim=1, keepdim=True) + 1e-4).all()  # an interpolation: no new extremes
    near_textured, near_smooth = prior[0, :, 40, 30], prior[0, :, 22, 36]  # just beside each square
    assert (near_textured > 2 * near_smooth).all()
    other = masked.clone()
    other[mask.expand_as(other) > 0.5] = 3.0  # whatever the hole holds
    assert torch.allclose(known_detail_prior(other, mask), prior)


def test_the_placement_probe_prints_its_maps_and_fills(data, tmp_path, capsys):
    from benchmarks.probe_detail_placement import main as probe, parse_args as probe_args
    from utils.loading import export_generator
    torch.manual_seed(0)
    path = export_generator(UNetGenerator(GeneratorConfig(64, 8, texture_noise=2)),
                            {"image_size": 64, "crop_ratio": 0.5}, tmp_path / "g.pth")
    probe(probe_args(["--test_dir", str(data / "test"), "--checkpoint", str(path), "--strength", "0,2"]))
    out = capsys.readouterr().out
    assert out.count("| + copied detail,") == 4 and "| known detail carried into the hole (prior) |" in out
    rows = [line for line in out.splitlines() if line.startswith("| + copied detail, even")]
    sharpness = [float(row.split("|")[4]) for row in rows]
    assert sharpness[1] > sharpness[0]  # copied detail at x2: a sharper fill than none


def test_pattern_scores_match_the_coarse_pattern_where_mean_colours_tie():
    size = 32
    image = torch.zeros(1, 3, size, size)
    image[:, 0, :16, :8] = 1.0  # window at corner (0, 0): its left half red
    image[:, 0, 16:24, 16:32] = 1.0  # window at corner (16, 16): its top half red; both means 0.5 red
    guide = torch.zeros(1, 3, size, size)
    guide[:, 0, :, : size // 2] = 1.0  # the guide: red on the left
    guide[:, 0, :, size // 2:] = 0.0
    side = size - PATCH + 1
    left, top = 0, 16 * side + 16
    colour = colour_scores(image, guide, 0.1, (0, 0))[0]
    pattern = pattern_scores(image, guide, 0.1, (0, 0), cells=4)[0]
    assert pattern.shape == colour.shape
    cell = 1  # the first row's second cell: its guide window, columns 8-23, is red on its left half
    assert abs(float(colour[cell, left] - colour[cell, top])) < 1e-4  # mean colours tie (both half red)
    assert pattern[cell, left] > pattern[cell, top] + 10  # the left-half-red patch matches the pattern
    with pytest.raises(ValueError, match="guide_cells"):
        ExemplarTexture(4, 0.3, guide_cells=3)


def test_peakiness_tells_an_edge_from_a_texture_and_the_draw_avoids_edges():
    torch.manual_seed(0)
    size = 48
    texture = torch.randn(1, 3, size, size) * 0.1
    edge = torch.zeros(1, 3, size, size)
    edge[..., :, 22] = 1.0  # one bright vertical line
    k = (size - PATCH + 1) // 2 * (size - PATCH + 1) + 16  # a window holding the line (columns 16-31): in 4 of its 16 cells
    assert peakiness(texture).shape == (1, (size - PATCH + 1) ** 2)
    assert float(peakiness(texture).median()) < 2.5
    assert abs(float(peakiness(edge)[0, k]) - 4.0) < 1e-3
    # a square with texture on its left and one bright line on its right: stationary draws copy the texture
    band = torch.zeros(1, 3, size, size)
    band[..., :, :24] = texture[..., :, :24] / 2  # std 0.05: never above 0.4
    band[..., :, 36:37] = 0.5
    region, guide = torch.ones(1, 1, size, size), torch.zeros(1, 3, size, size)
    for stationary, check in ((0.0, lambda counts: counts > 0), (10.0, lambda counts: counts == 0)):
        layer = ExemplarTexture(4, guide_temperature=1.0, stationary=stationary).eval()
        canvas = layer._lay(band, region, torch.zeros(1, 3, size, size), guide)
        line_pixels = int((canvas.abs() > 0.4).any(dim=1).sum())  # where a copy of the line lies
        assert check(line_pixels), (stationary, line_pixels)


def test_coherence_is_high_for_stripes_and_low_for_an_isotropic_texture():
    torch.manual_seed(0)
    size = 40
    noise = torch.randn(1, 3, size, size)
    columns = torch.arange(size).float()
    stripes = torch.sin(columns + columns.view(-1, 1)).expand(1, 3, size, size)  # diagonal stripes
    assert coherence(noise).shape == (1, (size - PATCH + 1) ** 2)
    assert float(coherence(noise).mean()) < 0.35  # 16 x 16 px of white noise still lean a little one way
    assert float(coherence(stripes).mean()) > 0.9
    band = torch.cat([noise[..., :, :20] * 0.05, stripes[..., :, 20:] * 0.05], dim=-1)  # noise | stripes
    laid = []
    for isotropic in (0.0, 10.0):
        layer = ExemplarTexture(4, guide_temperature=1.0, isotropic=isotropic).eval()
        canvas = layer._lay(band, torch.ones(1, 1, size, size), torch.zeros(1, 3, size, size),
                            torch.zeros(1, 3, size, size))
        laid.append(float(coherence(canvas).mean()))
    assert laid[0] > 0.45 and laid[1] < 0.4  # with the penalty the copies are mostly of the noise half


def _neighbour_correlation(x: torch.Tensor, dim: int) -> float:
    a, b = x.narrow(dim, 0, x.shape[dim] - 1).flatten(), x.narrow(dim, 1, x.shape[dim] - 1).flatten()
    return float(torch.corrcoef(torch.stack([a, b]))[0, 1])


def test_a_random_phase_canvas_keeps_the_bands_rms_orientation_and_colour_but_not_its_arrangement():
    torch.manual_seed(0)
    size = 64
    region = torch.zeros(1, 1, size, size)
    region[..., 40:, :24] = 1  # a 24 x 24 square, bottom left
    rows = torch.arange(size).float().view(-1, 1).expand(size, size)
    stripes = torch.cos(rows * 2.5) * 0.3  # horizontal stripes: constant along a row
    band = torch.stack([stripes, torch.zeros_like(stripes), stripes / 2])[None] * region  # red and some blue
    noise = torch.randn(size, size)
    canvas = spectral_canvas(band, region, noise)
    assert canvas.shape == band.shape
    kernel = spot_kernel(band, region)
    assert torch.allclose(kernel.pow(2).sum(dim=(2, 3)), (band - (band * region).sum((2, 3), keepdim=True) / 576)
                          .mul(region).pow(2).sum((2, 3)) / 576, atol=1e-6)  # kernel energy = the band's variance
    rms = (band[0, 0][region[0, 0] > 0]).std(unbiased=False)
    for part in (canvas[0, 0, :32], canvas[0, 0, 32:]):  # the same amount everywhere, not only under the square
        assert 0.7 < float(part.pow(2).mean().sqrt() / rms) < 1.3
    assert _neighbour_correlation(canvas[0, 0], 1) > 0.8  # the stripes' orientation: along the rows
    assert _neighbour_correlation(canvas[0, 0], 0) < -0.5  # and their period across them
    assert canvas[0, 1].abs().max() < 1e-5  # no colour the band lacks
    assert torch.allclose(canvas[0, 2], canvas[0, 0] / 2, atol=1e-5)  # its colour covariance kept
    # its arrangement is not: a single bright dot becomes a texture over the whole canvas, not a copied dot
    dot = torch.zeros(1, 3, size, size)
    dot[..., 50, 10] = 1
    spread = spectral_canvas(dot, region, noise)[0, 0]
    assert float(spread.abs().amax() / spread.abs().mean()) < 6


def test_flattened_detail_weighs_an_edge_no_more_than_the_surfaces():
    torch.manual_seed(0)
    size = 48
    region = torch.ones(1, 1, size, size)
    band = torch.randn(1, 3, size, size) * 0.02
    band[..., :, 30:32] = 1.0  # one strong edge
    energy = lambda x, cols: float(x[..., 8:-8, cols].pow(2).mean())  # noqa: E731
    edge, surface = slice(26, 36), slice(4, 14)  # 10-px strips: around the edge, of the texture
    assert energy(band, edge) / energy(band, surface) > 100
    flat = flatten_detail(band, region, floor=0.01)
    assert 0.8 < energy(flat, edge) / energy(flat, surface) < 1.25
    capped = flatten_detail(band, region, floor=0.3)  # the texture raised by at most 1 / 0.3
    assert abs(energy(capped, surface) / energy(band, surface) - 1 / 0.3 ** 2) < 0.1
    smooth = torch.zeros(1, 3, size, size)
    smooth[..., :, 30:32] = 1.0
    assert torch.all(flatten_detail(smooth, region, 0.3)[..., :, :20] == 0)  # nothing raised from zero


def test_matched_marginals_take_the_bands_values_in_the_canvas_order():
    torch.manual_seed(0)
    size = 32
    region = torch.zeros(2, 1, size, size)
    region[..., :16, :16] = 1
    band = torch.distributions.Exponential(5.0).sample((2, 3, size, size)) - 0.2  # skewed: a few bright blades
    canvas = torch.randn(2, 3, size, size) * 0.2  # symmetric
    matched = match_marginals(canvas, band, region)
    for i in range(2):
        for c in range(3):
            inside = band[i, c][region[i, 0] > 0.5].sort().values
            got = matched[i, c].flatten().sort().values
            assert torch.allclose(got[::4], inside, atol=1e-6)  # 1024 values at the band's 256 quantiles
            in_canvas_order = matched[i, c].flatten()[canvas[i, c].flatten().argsort()]
            assert torch.all(in_canvas_order[1:] >= in_canvas_order[:-1])  # monotone: the canvas's arrangement kept
    skew = lambda x: float(((x - x.mean()) ** 3).mean() / x.std() ** 3)  # noqa: E731
    assert abs(skew(canvas)) < 0.2 and skew(matched) > 1.5


def test_window_regions_tile_the_square_and_stay_inside_it():
    mask = masked_input(torch.zeros(1, 3, 64, 64), 0.4)[1]
    region = source_regions(mask)[:, :1]
    windows = window_regions(region, 12, 6)
    assert windows.shape[:2] == (1, 16)  # a 25-px square: windows start at 0, 6, 12 and 13 (the last one clamped)
    assert torch.all(windows <= region)
    assert torch.all(windows.amax(dim=1) == region)  # every region pixel is in some window
    assert torch.all(windows.flatten(2).sum(2) == 144)
    with pytest.raises(ValueError, match="the region is empty"):
        window_regions(torch.zeros_like(region), 12, 6)


def test_a_local_random_phase_canvas_takes_the_texture_of_the_windows_of_the_guides_colour():
    torch.manual_seed(0)
    size = 64
    region = torch.zeros(1, 1, size, size)
    region[..., :24, :24] = 1
    rows = torch.arange(size).float().view(-1, 1).expand(size, size)
    band = torch.zeros(1, 3, size, size)
    band[..., :, :12] = torch.cos(rows * 2.5)[:, :12] * 0.2  # the square's left: horizontal stripes
    band[..., :, 12:24] = torch.cos(rows.t() * 2.5)[:, 12:24] * 0.2  # its right: vertical stripes
    band = band * region
    image = torch.zeros(1, 3, size, size)
    image[:, 0, :, :12], image[:, 1, :, 12:] = 1, 1  # red on the left, green on the right
    guide = torch.zeros(1, 3, size, size)
    guide[:, 0, :, :32], guide[:, 1, :, 32:] = 1, 1  # the canvas: red on its left half, green on its right
    canvas = local_spectral_canvas(band, region, torch.randn(size, size), image, guide, 0.1, window=12, stride=12)
    left, right = canvas[0, 0, :, 4:24], canvas[0, 0, :, 40:60]
    assert _neighbour_correlation(left, 1) > 0.7 and _neighbour_correlation(left, 0) < -0.5
    assert _neighbour_correlation(right, 0) > 0.7 and _neighbour_correlation(right, 1) < -0.5
    for part in (left, right):  # each at its window's amount
        assert 0.7 < float(part.pow(2).mean().sqrt() / (0.2 / 2 ** 0.5)) < 1.3

"""The detail map (models/detail_map.py): where the hole has detail, predicted by a small head, and the fill that
lays the known squares' texture by it; the correlation loss it trains with (losses.block_correlation_loss)."""
import pytest
import torch

from data.masks import masked_input
from losses import block_correlation_loss, placement_loss
from models.detail_map import (DEFAULT_GROUPS, INPUT_GROUPS, DetailMapHead, PlacedExemplarTexture,
                               detail_map_inputs, diagonal_source_weights, even_laplacian, hole_gain,
                               select_groups, without_coarse_levels)


def test_the_block_correlation_loss_is_one_minus_pearson_over_the_inside_blocks():
    torch.manual_seed(0)
    target = torch.rand(2, 6, 6)
    inside = torch.zeros(2, 6, 6, dtype=torch.bool)
    inside[:, 1:5, 1:5] = True
    assert block_correlation_loss(3 * target + 1, target, inside) < 1e-3  # scale and offset free
    assert abs(float(block_correlation_loss(-target, target, inside)) - 2.0) < 1e-3
    assert abs(float(block_correlation_loss(torch.zeros_like(target), target, inside)) - 1.0) < 1e-6
    other = target.clone()
    other[~inside] = torch.rand(int((~inside).sum()))  # blocks outside do not count
    assert torch.allclose(block_correlation_loss(other, target, inside), block_correlation_loss(target, target, inside))
    pred = torch.rand(2, 6, 6, requires_grad=True)
    block_correlation_loss(pred, target, inside).backward()
    assert pred.grad.abs().sum() > 0 and pred.grad[~inside].abs().max() == 0
    flat = torch.ones_like(target)  # a target without varying detail counts for nothing
    assert float(block_correlation_loss(pred, flat, inside).detach()) == 0.0


def test_the_placement_loss_is_the_block_correlation_of_the_detail_energy():
    torch.manual_seed(0)
    truth = torch.zeros(1, 3, 32, 32)
    truth[..., :, :16] = torch.randn(1, 3, 32, 16)  # the left half is textured
    _, mask = masked_input(truth, 0.25)
    assert placement_loss(truth, truth, mask) < 1e-3
    assert placement_loss(truth.flip(-1), truth, mask) > 1.5  # the texture on the other side


def test_the_head_maps_blocks_to_a_map_and_learns():
    head = DetailMapHead(9, 16, dropout=0.1)
    x = torch.randn(3, 9, 8, 8)
    out = head(x)
    assert out.shape == (3, 8, 8)
    out.sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in head.parameters())


def test_the_inputs_hold_the_named_groups_per_block():
    torch.manual_seed(0)
    image = torch.rand(2, 3, 32, 32) * 2 - 1
    masked, mask = masked_input(image, 0.4)
    x = detail_map_inputs(masked, mask, image)
    assert x.shape == (2, sum(INPUT_GROUPS[g] for g in DEFAULT_GROUPS), 4, 4)
    hole = select_groups(x, ["hole"], DEFAULT_GROUPS)
    assert torch.allclose(hole, torch.nn.functional.avg_pool2d(mask, 8))
    position = select_groups(x, ["position"], DEFAULT_GROUPS)
    assert position[0, 0, 0, 0] == -1 and position[0, 0, -1, 0] == 1 and position[0, 1, 0, -1] == 1
    smoother = detail_map_inputs(masked, mask, image * 0.5)  # half the fill's detail: log own detail - log 2
    own = (select_groups(x, ["own"], DEFAULT_GROUPS) - select_groups(smoother, ["own"], DEFAULT_GROUPS))
    assert torch.allclose(own, torch.tensor(2.0).log(), atol=1e-4)
    with pytest.raises(AttributeError):  # the feature groups need the feature network
        detail_map_inputs(masked, mask, image, None, ("s8",))


def test_the_gain_is_positive_with_mean_one_over_the_hole_and_follows_the_map():
    torch.manual_seed(0)
    prediction = torch.randn(2, 6, 6)
    hole = torch.zeros(2, 6, 6, dtype=torch.bool)
    hole[:, 2:] = True
    for exponential in (False, True):
        gain = hole_gain(prediction, hole, 1.0, exponential=exponential)
        assert gain.min() > 0
        assert torch.allclose(gain[hole].view(2, -1).mean(1), torch.ones(2), atol=1e-5)
        inside = prediction[hole].view(2, -1)
        order = inside.argsort(dim=1)
        ranked = gain[hole].view(2, -1).gather(1, order)
        assert (ranked[:, 1:] >= ranked[:, :-1] - 1e-6).all()  # monotonic in the prediction
    assert torch.allclose(hole_gain(prediction, hole, 0.0), torch.ones(2, 6, 6))  # spread 0: even


def test_the_source_weights_split_along_the_diagonal_and_keep_the_energy():
    weights = diagonal_source_weights(32)
    assert torch.allclose(weights.pow(2).sum(0), torch.ones(32, 32), atol=1e-6)
    assert weights[0, -1, 0] > 0.99 and weights[1, 0, -1] > 0.99  # bottom-left, top-right corners


def test_even_laplacian_evens_the_local_detail():
    torch.manual_seed(0)
    detail = torch.randn(1, 3, 64, 64) * 0.05
    detail[..., :32] *= 4.0  # the left half four times as detailed
    mask = torch.ones(1, 1, 64, 64)
    out = even_laplacian(detail, mask, floor=0.1)
    lap = torch.tensor([[0.0, 1, 0], [1, -4, 1], [0, 1, 0]]).view(1, 1, 3, 3)
    local = torch.nn.functional.conv2d(out.mean(1, keepdim=True), lap).abs()
    left, right = local[..., 8:-8, 4:24].mean(), local[..., 8:-8, 38:58].mean()
    assert 0.8 < float(left / right) < 1.25  # was 4
    smooth = torch.zeros(1, 3, 64, 64)
    smooth[..., 32:] = torch.randn(1, 3, 64, 32) * 0.05
    raised = even_laplacian(smooth, mask, floor=0.5)
    assert raised[..., :24].abs().max() < 1e-6  # nothing is raised without bound: zero stays zero


def test_without_coarse_levels_removes_the_coarse_content_and_keeps_the_fine():
    torch.manual_seed(0)
    flat = torch.full((1, 3, 64, 64), 0.4)
    assert without_coarse_levels(flat, 3).abs().max() < 1e-4
    noise = torch.randn(1, 3, 64, 64)
    kept = without_coarse_levels(noise, 3)
    assert float(kept.pow(2).mean() / noise.pow(2).mean()) > 0.9
    ramp = torch.linspace(-1, 1, 64).view(1, 1, 1, 64).expand(1, 3, 64, 64)
    assert without_coarse_levels(ramp, 3)[..., 8:-8, 8:-8].abs().max() < 0.05


def _layer(**kwargs):
    torch.manual_seed(0)
    layer = PlacedExemplarTexture(8, **kwargs).eval()
    return layer


@pytest.mark.parametrize("source", ["patches", "spectral", "local_spectral"])
def test_the_placed_fill_keeps_the_known_pixels_is_reproducible_and_adds_detail(source):
    torch.manual_seed(0)
    image = torch.rand(2, 3, 64, 64) * 2 - 1
    masked, mask = masked_input(image, 0.4)
    filled = torch.where(mask > 0.5, torch.zeros_like(image), image)
    layer = _layer(source=source)
    with torch.no_grad():
        out = layer(masked, mask, filled)
        again = layer(masked, mask, filled)
        alone = layer(masked[1:], mask[1:], filled[1:])
        layout = _layer(strength=0.0, source=source)(masked, mask, filled)
    assert out.shape == image.shape
    known = mask.expand_as(image) < 0.5
    assert torch.equal(out[known], image[known])
    assert torch.equal(out, again)  # eval: the same draw every call
    assert torch.allclose(out[1:], alone, atol=1e-5)  # and whatever the batch
    hole = ~known
    assert out[hole].std() > 2 * layout[hole].std()  # the copied detail is there


def test_random_phase_sources_take_their_options_and_refuse_an_unknown_source():
    torch.manual_seed(0)
    image = torch.rand(1, 3, 64, 64) * 2 - 1
    masked, mask = masked_input(image, 0.4)
    filled = torch.where(mask > 0.5, torch.zeros_like(image), image)
    with torch.no_grad():
        layout = _layer(strength=0.0)(masked, mask, filled)
        grey = _layer(source="spectral", chroma=0.0, keep_levels=0)(masked, mask, filled) - layout
        flat = _layer(source="spectral", flatten_floor=0.3)(masked, mask, filled) - layout
        plain = _layer(source="spectral")(masked, mask, filled) - layout
    hole = mask.expand_as(image) > 0.5
    assert grey[hole].abs().mean() > 0.01
    inside = (mask > 0.5)[:, 0] & (grey.abs().amax(dim=1) < 0.99 - layout.abs().amax(dim=1))  # not clamped
    assert torch.allclose(grey[:, 0][inside], grey[:, 1][inside], atol=1e-5)  # chroma 0: grey detail
    assert not torch.allclose(flat, plain)
    with torch.no_grad():  # shading: grey detail scaling each channel, so the fill keeps the layout's colour ratios
        shaded = _layer(source="spectral", shading=True, keep_levels=0, match_histogram=True)(masked, mask, filled)
    ratios = (shaded + 1) / (layout + 1)  # (B, 3, S, S): the same for every channel
    free = (mask[:, 0] > 0.5) & (shaded.abs().amax(dim=1) < 0.99) & ((layout + 1).amin(dim=1) > 0.2)
    assert free.sum() > 100 and (ratios[:, 0] - 1)[free].abs().mean() > 0.01
    assert torch.allclose(ratios[:, 0][free], ratios[:, 1][free], atol=1e-4)
    assert torch.allclose(ratios[:, 2][free], ratios[:, 1][free], atol=1e-4)
    with pytest.raises(ValueError, match="source must be one of"):
        PlacedExemplarTexture(8, source="fourier")


def test_the_placed_fill_lays_its_detail_where_the_head_says():
    torch.manual_seed(0)
    image = torch.rand(1, 3, 64, 64) * 2 - 1
    masked, mask = masked_input(image, 0.4)
    filled = torch.where(mask > 0.5, torch.zeros_like(image), image)
    layer = _layer(spread=2.0)
    with torch.no_grad():  # a head that says: detail on the right (its last layer reads the column position)
        for p in layer.head.parameters():
            p.zero_()
        net = layer.head.net
        column = sum(INPUT_GROUPS[g] for g in DEFAULT_GROUPS) - 1
        net[1].weight[0, column] = 1.0
        net[2].bias.fill_(0.0)
        net[2].weight.fill_(1.0)  # GroupNorm: identity on channel 0
        for conv in (net[4], net[6], net[8]):
            conv.weight[0, 0, 1, 1] = 1.0
        out = layer(masked, mask, filled)
        detail = out - _layer(strength=0.0)(masked, mask, filled)
    rows = slice(26, 38)  # the hole's middle band, left and right of the centre
    left, right = detail[..., rows, 8:28].abs().mean(), detail[..., rows, 36:56].abs().mean()
    assert right > 1.5 * left


def test_the_head_learns_through_the_placed_fill():
    torch.manual_seed(0)
    image = torch.rand(1, 3, 64, 64) * 2 - 1
    masked, mask = masked_input(image, 0.4)
    layer = PlacedExemplarTexture(8).train()
    out = layer(masked, mask, image)
    (out * torch.randn_like(out)).sum().backward()
    assert layer.head.net[1].weight.grad.abs().sum() > 0


def test_the_probes_train_a_head_and_fill_with_it(data, tmp_path, capsys):
    from benchmarks.probe_detail_predictor import main as train_probe, parse_args as train_args
    from benchmarks.probe_placed_exemplar import main as fill_probe, parse_args as fill_args
    from models import GeneratorConfig, UNetGenerator
    from utils.loading import export_generator
    torch.manual_seed(0)
    path = export_generator(UNetGenerator(GeneratorConfig(64, 8, texture_noise=2)),
                            {"image_size": 64, "crop_ratio": 0.4}, tmp_path / "g.pth")
    head = tmp_path / "head.pth"
    train_probe(train_args(["--train_dir", str(data / "train"), "--val_dir", str(data / "test"), "--checkpoint",
                            str(path), "--crops", "2", "--epochs", "2", "--holdout", "1", "--width", "8",
                            "--save", str(head)]))
    out = capsys.readouterr().out
    assert "| trained head, epoch" in out and head.is_file()
    assert "6 training crops of 3 photos" in out  # 2 crops of the 4 photos but the held-out one
    subset = ["--train_dir", str(data / "train"), "--val_dir", str(data / "test"), "--checkpoint", str(path), "--crops",
              "2", "--epochs", "1", "--holdout", "1", "--width", "8"]
    train_probe(train_args(subset + ["--train_photos", "2"]))  # the crops of 2 of the 3 photos
    assert "4 training crops of 2 photos" in capsys.readouterr().out
    with pytest.raises(SystemExit, match=r"--train_photos must be in 1\.\.3"):
        train_probe(train_args(subset + ["--train_photos", "4"]))
    fill_probe(fill_args(["--test_dir", str(data / "test"), "--head", str(head), "--checkpoint", str(path),
                          "--strength", "0,2"]))
    out = capsys.readouterr().out
    assert "correlation with the truth's block detail: the head's map" in out
    rows = [line for line in out.splitlines() if line.startswith("| x")]
    sharpness = [float(row.split("|")[4]) for row in rows]
    assert len(rows) == 2 and sharpness[1] > sharpness[0]
    fill_probe(fill_args(["--test_dir", str(data / "test"), "--head", str(head), "--checkpoint", str(path),
                          "--strength", "0", "--oracle_layout", "--source", "spectral"]))
    out = capsys.readouterr().out
    assert "ORACLE: the truth's low-pass as the layout" in out
    oracle = [line for line in out.splitlines() if line.startswith("| x")]
    lowpass = [float(row.split("|")[3]) for row in rows[:1] + oracle]  # the untrained generator's, the truth's
    assert lowpass[1] > lowpass[0] + 3
    with pytest.raises(SystemExit):
        train_args(["--train_dir", "a", "--val_dir", "b", "--inputs", "own,sky"])
    assert "unknown input group(s) ['sky']" in capsys.readouterr().err


def test_the_committed_head_loads_with_its_config_and_the_probe_refuses_another_size(data, tmp_path):
    from benchmarks.probe_placed_exemplar import main as fill_probe, parse_args as fill_args
    from models import GeneratorConfig, UNetGenerator
    from utils.loading import export_generator, load_detail_head
    from utils.files import repo_path
    head = repo_path("checkpoints/detail_map_head_128.pth")
    model_args, weights, config = load_detail_head(head)
    assert tuple(model_args["groups"]) == DEFAULT_GROUPS and config["image_size"] == 128
    layer = PlacedExemplarTexture(model_args["width"], model_args["groups"])
    layer.head.load_state_dict(weights)  # strict: every weight has its place
    path = export_generator(UNetGenerator(GeneratorConfig(64, 8)), {"image_size": 64, "crop_ratio": 0.4},
                            tmp_path / "g64.pth")
    with pytest.raises(SystemExit, match="trained at 128 px"):
        fill_probe(fill_args(["--test_dir", str(data / "test"), "--checkpoint", str(path), "--head", str(head)]))

"""Two-stage generator (GeneratorConfig.coarse_stage, --coarse_stage): a frozen trained generator's fill replaces the
harmonic start, and the network learns the residual on top of it (coarse-to-fine, as DeepFill)."""
from dataclasses import replace

import pytest
import torch

from data.masks import masked_input
from models import GeneratorConfig, UNetGenerator
from utils.errors import InputError
from utils.files import file_sha256
from utils.loading import export_generator, load_coarse_stage


def _first_stage(tmp_path, texture_noise=4):
    """A tiny trained-looking generator file (random last layer and texture head: its fill is not the harmonic)."""
    torch.manual_seed(0)
    coarse = UNetGenerator(GeneratorConfig(64, 8, texture_noise=texture_noise))
    for module in (coarse.up[0][-1][-1],) + ((coarse.texture[-1],) if texture_noise else ()):
        torch.nn.init.normal_(module.weight, 0, 0.05)
    path = export_generator(coarse.eval(), {"image_size": 64}, tmp_path / "coarse.pth")
    return path, file_sha256(path)


def _two_stage(tmp_path, lowpass=0, layout=0.0):
    path, sha = _first_stage(tmp_path)
    config = GeneratorConfig(64, 8, coarse_stage=str(path), coarse_stage_sha256=sha, coarse_stage_lowpass=lowpass,
                             coarse_stage_layout=layout)
    return UNetGenerator(config, coarse_network=load_coarse_stage(str(path), sha)), path


def _inputs():
    image = torch.rand(2, 3, 64, 64) * 2 - 1
    return masked_input(image, 0.4)


def test_an_untrained_second_stage_returns_the_first_stages_fill_without_its_grain(tmp_path):
    two_stage, path = _two_stage(tmp_path)
    masked, mask = _inputs()
    from utils.loading import load_generator, scale_texture
    first, _ = load_generator(path)
    with torch.no_grad():
        grainy = first(masked, mask)
        smooth = scale_texture(first, 0.0)(masked, mask)
        out = two_stage.eval()(masked, mask)
    # the residual starts at zero: the hole is tanh(atanh(coarse fill)) (clamped at +-0.999), the known squares exact
    hole = mask.expand_as(out) > 0.5
    assert torch.allclose(out[hole], smooth[hole].clamp(-0.999, 0.999), atol=1e-5)
    assert not torch.allclose(out[hole], grainy[hole], atol=1e-3)  # the first stage's texture head is off
    assert torch.equal(out[~hole], masked[~hole])


def test_the_low_passed_start_keeps_the_coarse_fills_layout_and_drops_its_fine_detail(tmp_path):
    from models.filters import pyramid_lowpass
    plain, _ = _two_stage(tmp_path)
    smooth, _ = _two_stage(tmp_path / "lp", lowpass=2)
    masked, mask = _inputs()
    with torch.no_grad():
        raw, low = plain.start_fill(masked, mask), smooth.start_fill(masked, mask)
    hole = mask.expand_as(raw) > 0.5
    assert torch.allclose(low[hole], pyramid_lowpass(raw, 2)[hole], atol=1e-6)
    assert torch.equal(low[~hole], masked[~hole])
    fine = lambda x: (x - pyramid_lowpass(x, 2))[hole].abs().mean()  # detail above 1/4 of the size
    assert fine(low) < 0.5 * fine(raw)
    layout = lambda x: pyramid_lowpass(x, 3)[hole]  # what is left at 1/8 of the size barely moves
    assert (layout(low) - layout(raw)).abs().mean() < 0.25 * fine(raw)
    with pytest.raises(ValueError, match="needs a coarse_stage"):
        GeneratorConfig(64, 8, coarse_stage_lowpass=2)


def test_the_layout_share_swaps_the_16px_level_for_the_coarse_stages_and_keeps_the_finer_bands(tmp_path):
    from dataclasses import replace
    from models.filters import pyramid_lowpass
    two_stage, _ = _two_stage(tmp_path, lowpass=1)
    torch.nn.init.normal_(two_stage.up[0][-1][-1].weight, 0, 0.05)  # a second stage that changes the layout
    masked, mask = _inputs()
    outs = {}
    for share in (0.0, 0.5, 1.0):
        two_stage.config = replace(two_stage.config, coarse_stage_layout=share)
        with torch.no_grad():
            outs[share] = two_stage.eval()(masked, mask)
    with torch.no_grad():
        coarse = two_stage.coarse_stage(masked, mask)
    hole = mask.expand_as(coarse) > 0.5
    interior = torch.nn.functional.max_pool2d(1 - mask, 9, 1, 4).expand_as(coarse) < 0.5  # 4 px from the squares
    layout = lambda x: pyramid_lowpass(x, 2)  # 64 px -> the 16-px level and back
    off = lambda x: (layout(x) - layout(coarse))[interior].abs().mean()
    assert off(outs[1.0]) < 0.2 * off(outs[0.0])  # the layout is the coarse stage's
    # the finer bands move an order of magnitude less than the layout (the pyramid's filters overlap a little)
    moved = lambda part: (part(outs[1.0]) - part(outs[0.0]))[interior].abs().mean()
    assert moved(lambda x: x - layout(x)) < 0.15 * moved(layout)
    assert torch.allclose(outs[0.5], (outs[0.0] + outs[1.0]) / 2, atol=1e-5)  # a linear share
    assert torch.equal(outs[1.0][~hole], masked[~hole])
    out = two_stage.train()(masked, mask)  # the finer bands still train
    (out * torch.randn_like(out)).sum().backward()
    assert two_stage.up[0][-1][-1].weight.grad.abs().sum() > 0
    path, sha = _first_stage(tmp_path / "v")
    with pytest.raises(ValueError, match="needs a coarse_stage"):
        GeneratorConfig(64, 8, coarse_stage_layout=1.0)
    with pytest.raises(ValueError, match="0 to 1"):
        GeneratorConfig(64, 8, coarse_stage=str(path), coarse_stage_sha256=sha, coarse_stage_layout=1.5)
    with pytest.raises(ValueError, match=">= 32"):
        GeneratorConfig(16, 8, coarse_stage=str(path), coarse_stage_sha256=sha, coarse_stage_layout=1.0)
    assert GeneratorConfig.from_flags({"image_size": 64, "ngf": 8}).coarse_stage_layout == 0  # older checkpoints


def test_the_first_stage_stays_frozen_in_eval_mode_and_out_of_the_state_dict(tmp_path):
    two_stage, _ = _two_stage(tmp_path)
    two_stage.train()
    first = two_stage.coarse_stage
    assert not first.training and not any(p.requires_grad for p in first.parameters())
    assert not any(k.startswith("coarse_stage.") for k in two_stage.state_dict())  # the file holds those
    from main import generator_parameter_groups
    trainable = {id(p) for group in generator_parameter_groups(two_stage, 1e-4) for p in group["params"]}
    assert not trainable & {id(p) for p in first.parameters()}
    before = {k: v.clone() for k, v in first.state_dict().items()}
    torch.nn.init.normal_(two_stage.up[0][-1][-1].weight, 0, 0.05)
    masked, mask = _inputs()
    out = two_stage(masked, mask)
    (out * torch.randn_like(out)).sum().backward()
    assert all(p.grad is None for p in first.parameters())
    assert two_stage.up[0][-1][-1].weight.grad.abs().sum() > 0
    assert all(torch.equal(v, before[k]) for k, v in first.state_dict().items())
    # a state dict of the second stage alone loads back (strict) into a rebuilt two-stage generator
    rebuilt, _ = _two_stage(tmp_path / "again")
    rebuilt.load_state_dict(two_stage.state_dict())


def test_a_missing_or_changed_first_stage_is_refused_with_the_fix(tmp_path):
    path, sha = _first_stage(tmp_path)
    with pytest.raises(InputError, match="missing"):
        load_coarse_stage(str(tmp_path / "gone.pth"), sha)
    with pytest.raises(InputError, match="SHA-256"):
        load_coarse_stage(str(path), "0" * 64)
    with pytest.raises(ValueError, match="coarse_network"):
        UNetGenerator(GeneratorConfig(64, 8, coarse_stage=str(path), coarse_stage_sha256=sha))
    with pytest.raises(ValueError, match="harmonic"):
        GeneratorConfig(64, 8, harmonic=False, texture_noise=0, coarse_stage=str(path), coarse_stage_sha256=sha)
    assert GeneratorConfig.from_flags({"image_size": 64, "ngf": 8}).coarse_stage == ""  # older checkpoints


def test_train_a_second_stage_from_a_harmonic_run_and_resume_it_exactly(data, tmp_path):
    import main as gan
    from tests.helpers import tiny_gan_args, train_straight_and_resumed
    from utils.loading import load_generator

    gan.main(tiny_gan_args(data, tmp_path / "a", "--texture_noise", "4"))
    first = tmp_path / "a" / "checkpoint_epoch_1.pth"
    with pytest.raises(InputError, match="--coarse_stage"):
        tiny_gan_args(data, tmp_path / "x", "--coarse_stage", str(tmp_path / "none.pth"))
    straight, split = train_straight_and_resumed(data, tmp_path, "--texture_noise", "4", "--init_from", str(first),
                                                 "--coarse_stage", str(first), "--coarse_stage_lowpass", "1",
                                                 "--coarse_stage_layout", "0.5")
    assert straight["model_args"]["coarse_stage_sha256"] == file_sha256(first)
    assert straight["model_args"]["coarse_stage_lowpass"] == 1 and straight["config"]["coarse_stage_lowpass"] == 1
    assert straight["model_args"]["coarse_stage_layout"] == 0.5 and straight["config"]["coarse_stage_layout"] == 0.5
    assert not any(k.startswith("coarse_stage.") for k in straight["generator"])
    for key, value in straight["generator"].items():
        assert torch.equal(value, split["generator"][key]), f"generator.{key} differs after resume"
    generator, _ = load_generator(tmp_path / "straight" / "checkpoint_epoch_2.pth")  # rebuilt with its first stage
    assert generator.coarse_stage is not None and not generator.coarse_stage.training
    masked, mask = _inputs()
    with torch.no_grad():
        assert not torch.allclose(generator(masked, mask), generator.start_fill(masked, mask))  # it learned a residual


def test_an_int8_export_is_a_quarter_of_fp32_and_fills_as_the_float_generator_does(tmp_path):
    from utils.loading import load_generator, pack_weights, unpack_weights
    torch.manual_seed(0)
    generator = UNetGenerator(GeneratorConfig(64, 8, texture_noise=2)).eval()
    torch.nn.init.normal_(generator.up[0][-1][-1].weight, 0, 0.05)
    weights, scales = pack_weights(generator.state_dict(), int8=True)
    assert scales and all(weights[k].dtype == torch.int8 for k in scales)
    for key, value in unpack_weights(weights, scales).items():  # at most half a step of each channel's scale
        original = generator.state_dict()[key].float()
        if key in scales:
            step = scales[key].view((-1,) + (1,) * (original.dim() - 1))
            assert ((value - original).abs() <= 0.5 * step + 1e-7).all(), key
        else:
            assert torch.allclose(value, original, atol=1e-3), key
    fp16 = export_generator(generator, {"image_size": 64}, tmp_path / "fp16.pth")
    int8 = export_generator(generator, {"image_size": 64}, tmp_path / "int8.pth", int8=True)
    assert int8.stat().st_size < 0.65 * fp16.stat().st_size
    masked, mask = _inputs()
    with torch.no_grad():
        reference = generator(masked, mask)
        assert (load_generator(int8)[0](masked, mask) - reference).abs().max() < 0.05
        assert (load_generator(fp16)[0](masked, mask) - reference).abs().max() < 0.01


def test_a_two_stage_export_carries_its_first_stage_and_needs_no_other_file(tmp_path):
    from utils.loading import load_generator
    two_stage, first = _two_stage(tmp_path, lowpass=1, layout=1.0)
    torch.nn.init.normal_(two_stage.up[0][-1][-1].weight, 0, 0.05)
    path = export_generator(two_stage.eval(), {"image_size": 64}, tmp_path / "pair.pth", int8=True)
    first.unlink()  # the export alone is the model
    loaded, _ = load_generator(path)
    assert loaded.coarse_stage is not None and not loaded.coarse_stage.training
    assert not any(p.requires_grad for p in loaded.coarse_stage.parameters())
    masked, mask = _inputs()
    with torch.no_grad():
        assert (loaded(masked, mask) - two_stage(masked, mask)).abs().max() < 0.05


def test_the_export_tool_writes_a_loadable_file_and_refuses_a_missing_checkpoint(tmp_path, capsys):
    import tools.export_generator as tool
    from utils.loading import load_generator
    path, _ = _first_stage(tmp_path)
    assert tool.main(tool.parse_args([str(path), str(tmp_path / "out.pth"), "--int8"])) is None
    assert "int8" in capsys.readouterr().out
    assert load_generator(tmp_path / "out.pth")[0].config == load_generator(path)[0].config
    with pytest.raises(InputError, match="the checkpoint"):
        tool.main(tool.parse_args([str(tmp_path / "none.pth"), str(tmp_path / "x.pth")]))


def test_a_first_stage_swapped_into_an_export_fills_as_a_generator_built_with_it(tmp_path):
    import tools.export_generator as tool
    from utils.loading import load_generator
    two_stage, _ = _two_stage(tmp_path, lowpass=1, layout=1.0)
    torch.nn.init.normal_(two_stage.up[0][-1][-1].weight, 0, 0.05)
    checkpoint = export_generator(two_stage.eval(), {"image_size": 64}, tmp_path / "pair.pth")
    torch.manual_seed(1)  # another first stage: other weights, no texture head
    other = UNetGenerator(GeneratorConfig(64, 8))
    torch.nn.init.normal_(other.up[0][-1][-1].weight, 0, 0.05)
    other_path = export_generator(other.eval(), {"image_size": 64}, tmp_path / "other.pth")
    tool.main(tool.parse_args([str(checkpoint), str(tmp_path / "swapped.pth"), "--coarse_stage", str(other_path)]))

    swapped, config = load_generator(tmp_path / "swapped.pth")
    assert config["coarse_stage_sha256"] == swapped.config.coarse_stage_sha256 == file_sha256(other_path)
    expected = UNetGenerator(replace(two_stage.config, coarse_stage=str(other_path),
                                     coarse_stage_sha256=file_sha256(other_path)),
                             coarse_network=load_coarse_stage(str(other_path), file_sha256(other_path)))
    expected.load_state_dict(two_stage.state_dict())  # the second stage's own weights are kept
    masked, mask = _inputs()
    with torch.no_grad():
        out, reference, before = swapped(masked, mask), expected.eval()(masked, mask), two_stage(masked, mask)
    assert (out - reference).abs().max() < 0.01  # fp16 export
    assert (out - before).abs().max() > 0.05  # the layout is the new stage's, not the old one's


def test_swapping_the_first_stage_is_refused_for_a_one_stage_generator_or_another_size(tmp_path):
    from utils.loading import with_coarse_stage
    path, _ = _first_stage(tmp_path)
    one_stage = UNetGenerator(GeneratorConfig(64, 8))
    with pytest.raises(InputError, match="only a two-stage generator"):
        with_coarse_stage(one_stage, {}, path)
    two_stage, _ = _two_stage(tmp_path)
    small = export_generator(UNetGenerator(GeneratorConfig(32, 8)).eval(), {"image_size": 32}, tmp_path / "small.pth")
    with pytest.raises(InputError, match="same --image_size"):
        with_coarse_stage(two_stage, {}, small)
    with pytest.raises(InputError, match="not a file"):
        with_coarse_stage(two_stage, {}, tmp_path / "none.pth")

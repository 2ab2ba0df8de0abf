"""A mean of fills (models.gan.MeanFill, tools/export_mean_fill.py): several generators' fills averaged per pixel,
stored as one generator file, usable wherever a generator file is, the first stage of a two-stage generator included."""
from dataclasses import replace

import pytest
import torch

from data.masks import masked_input
from models import GeneratorConfig, MeanFill, UNetGenerator
from utils.errors import InputError
from utils.files import file_sha256
from utils.loading import export_generator, load_coarse_stage, load_generator


def _generator(seed, ngf=8, size=64, texture_noise=0):
    """A tiny generator whose fill is its own (random last layers: not the harmonic start)."""
    torch.manual_seed(seed)
    generator = UNetGenerator(GeneratorConfig(size, ngf, texture_noise=texture_noise))
    for module in (generator.up[0][-1][-1],) + ((generator.texture[-1],) if texture_noise else ()):
        torch.nn.init.normal_(module.weight, 0, 0.05)
    return generator.eval()


def _files(tmp_path, count=3, **kwargs):
    """Generator files of `count` unrelated tiny generators (other seeds, other widths)."""
    return [export_generator(_generator(seed, ngf=8 + 4 * (seed % 2), **kwargs), {"image_size": 64, "crop_ratio": 0.4},
                             tmp_path / f"member{seed}.pth") for seed in range(count)]


def _inputs(size=64):
    torch.manual_seed(5)
    return masked_input(torch.rand(2, 3, size, size) * 2 - 1, 0.4)


def test_the_mean_fill_is_the_members_average_in_the_hole_and_the_photo_outside():
    members = [_generator(0), _generator(1, ngf=12), _generator(2)]
    masked, mask = _inputs()
    with torch.no_grad():
        fills = [member(masked, mask) for member in members]
        out = MeanFill(members)(masked, mask)
    hole = mask.expand_as(out) > 0.5
    assert torch.allclose(out[hole], torch.stack(fills).mean(0)[hole], atol=1e-6)
    assert torch.equal(out[~hole], masked[~hole])
    # the members disagree, so the mean is none of them
    assert min((out - fill)[hole].abs().max() for fill in fills) > 1e-3


def test_a_mean_needs_two_members_of_one_size():
    with pytest.raises(ValueError, match="two or more"):
        MeanFill([_generator(0)])
    with pytest.raises(ValueError, match="one image size"):
        MeanFill([_generator(0), _generator(1, size=32)])


def test_the_tool_writes_one_file_that_loads_as_the_mean_and_refuses_bad_inputs(tmp_path, capsys):
    import tools.export_mean_fill as tool
    paths = _files(tmp_path)
    out = tmp_path / "mean.pth"
    tool.main(tool.parse_args([str(p) for p in paths] + ["--export", str(out)]))
    assert "mean of the fills of 3 generators" in capsys.readouterr().out
    loaded, config = load_generator(out)
    assert isinstance(loaded, MeanFill) and not loaded.training and config["mean_of"] == [str(p) for p in paths]
    assert config["image_size"] == 64 and config["crop_ratio"] == 0.4  # what eval reads of a generator file's config
    reference = MeanFill([load_generator(p)[0] for p in paths])
    masked, mask = _inputs()
    with torch.no_grad():
        assert (loaded(masked, mask) - reference(masked, mask)).abs().max() < 1e-5  # the members' fp16 weights as stored

    with pytest.raises(InputError, match="two or more"):
        tool.main(tool.parse_args([str(paths[0]), "--export", str(out)]))
    small = export_generator(_generator(9, size=32), {"image_size": 32}, tmp_path / "small.pth")
    with pytest.raises(InputError, match="one --image_size"):
        tool.main(tool.parse_args([str(paths[0]), str(small), "--export", str(out)]))
    with pytest.raises(InputError, match="the checkpoint list"):
        tool.main(tool.parse_args([str(paths[0]), str(tmp_path / "none.pth"), "--export", str(out)]))


def test_weight_averaging_refuses_a_mean_of_fills(tmp_path):
    import tools.average_checkpoints as soup
    import tools.export_mean_fill as tool
    paths = _files(tmp_path, count=2)
    tool.main(tool.parse_args([str(p) for p in paths] + ["--export", str(tmp_path / "mean.pth")]))
    with pytest.raises(InputError, match="mean of several generators.*give the generators"):
        soup.main(soup.parse_args([str(tmp_path / "mean.pth"), str(paths[0]), "--export", str(tmp_path / "x.pth")]))


def test_a_mean_as_first_stage_starts_the_second_stage_travels_in_its_export_and_is_frozen(tmp_path):
    import tools.export_mean_fill as tool
    paths = _files(tmp_path, texture_noise=4)  # members with grain: a first stage turns it off
    mean_path = tmp_path / "mean.pth"
    tool.main(tool.parse_args([str(p) for p in paths] + ["--export", str(mean_path)]))
    sha = file_sha256(mean_path)
    first = load_coarse_stage(str(mean_path), sha)
    assert isinstance(first, MeanFill) and all(member.texture[-1].weight.abs().max() == 0 for member in first.members)
    two_stage = UNetGenerator(GeneratorConfig(64, 8, coarse_stage=str(mean_path), coarse_stage_sha256=sha),
                              coarse_network=first)
    masked, mask = _inputs()
    with torch.no_grad():
        out, smooth = two_stage.eval()(masked, mask), first(masked, mask)
    hole = mask.expand_as(out) > 0.5
    assert torch.allclose(out[hole], smooth[hole].clamp(-0.999, 0.999), atol=1e-5)  # zero residual: the mean's fill

    two_stage.train()
    assert not first.training and not any(p.requires_grad for p in first.parameters())
    assert not any(key.startswith("coarse_stage.") for key in two_stage.state_dict())

    torch.nn.init.normal_(two_stage.up[0][-1][-1].weight, 0, 0.05)
    export = export_generator(two_stage.eval(), {"image_size": 64}, tmp_path / "pair.pth")
    mean_path.unlink()
    for path in paths:
        path.unlink()  # the export alone is the model
    loaded, _ = load_generator(export)
    assert isinstance(loaded.coarse_stage, MeanFill) and len(loaded.coarse_stage.members) == 3
    with torch.no_grad():
        assert (loaded(masked, mask) - two_stage(masked, mask)).abs().max() < 0.01  # fp16 export


def test_a_mean_swapped_in_as_the_first_stage_fills_as_a_generator_built_with_it(tmp_path):
    import tools.export_generator as export_tool
    import tools.export_mean_fill as tool
    single = export_generator(_generator(7), {"image_size": 64}, tmp_path / "single.pth")
    two_stage = UNetGenerator(GeneratorConfig(64, 8, coarse_stage=str(single), coarse_stage_sha256=file_sha256(single),
                                              coarse_stage_lowpass=2, coarse_stage_layout=1.0),
                              coarse_network=load_coarse_stage(str(single), file_sha256(single)))
    torch.nn.init.normal_(two_stage.up[0][-1][-1].weight, 0, 0.05)
    checkpoint = export_generator(two_stage.eval(), {"image_size": 64}, tmp_path / "pair.pth")
    paths = _files(tmp_path)
    mean_path = tmp_path / "mean.pth"
    tool.main(tool.parse_args([str(p) for p in paths] + ["--export", str(mean_path)]))
    export_tool.main(export_tool.parse_args([str(checkpoint), str(tmp_path / "swapped.pth"),
                                             "--coarse_stage", str(mean_path)]))

    swapped, config = load_generator(tmp_path / "swapped.pth")
    assert config["coarse_stage_sha256"] == file_sha256(mean_path)
    expected = UNetGenerator(replace(two_stage.config, coarse_stage=str(mean_path),
                                     coarse_stage_sha256=file_sha256(mean_path)),
                             coarse_network=load_coarse_stage(str(mean_path), file_sha256(mean_path)))
    expected.load_state_dict(two_stage.state_dict())
    masked, mask = _inputs()
    with torch.no_grad():
        out, reference, before = swapped(masked, mask), expected.eval()(masked, mask), two_stage(masked, mask)
    assert (out - reference).abs().max() < 0.01
    assert (out - before).abs().max() > 0.05  # the layout is the mean's, not the single stage's


def test_the_command_line_refuses_a_single_generator_in_one_line_before_loading_anything(tmp_path):
    import subprocess
    import sys
    from pathlib import Path
    root = Path(__file__).resolve().parents[1]
    result = subprocess.run([sys.executable, str(root / "tools/export_mean_fill.py"), str(tmp_path / "a.pth"),
                             "--export", str(tmp_path / "m.pth")], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "two or more" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "m.pth").exists()


def test_a_deflated_export_holds_the_same_weights_in_a_smaller_file(tmp_path):
    import zipfile
    import tools.export_generator as tool
    plain = export_generator(_generator(3, ngf=16), {"image_size": 64}, tmp_path / "plain.pth", int8=True)
    tool.main(tool.parse_args([str(plain), str(tmp_path / "small.pth"), "--int8", "--compress"]))
    small = tmp_path / "small.pth"
    with zipfile.ZipFile(small) as archive:
        assert {entry.compress_type for entry in archive.infolist()} == {zipfile.ZIP_DEFLATED}
    assert small.stat().st_size < 0.95 * plain.stat().st_size
    a, b = torch.load(plain, weights_only=True), torch.load(small, weights_only=True)
    assert a["generator"].keys() == b["generator"].keys()
    assert all(torch.equal(a["generator"][k], b["generator"][k]) for k in a["generator"])
    masked, mask = _inputs()
    with torch.no_grad():
        assert torch.equal(load_generator(plain)[0](masked, mask), load_generator(small)[0](masked, mask))

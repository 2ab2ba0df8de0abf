"""models.patch_synthesis: coherent patch synthesis of the hole from the known squares, guided by a layout."""
import pytest
import torch

from data.masks import masked_input
from models.patch_synthesis import SourcePatches, guided_patch_synthesis, known_pyramid

SIZE = 48


def two_tone_photo(seed: int = 0) -> torch.Tensor:
    """(1, 3, S, S): a bright, grainy upper half and a dark, grainy lower half, so the top-right square holds the
    bright texture and the bottom-left the dark one."""
    generator = torch.Generator().manual_seed(seed)
    photo = 0.1 * torch.randn(1, 3, SIZE, SIZE, generator=generator)
    photo[..., :SIZE // 2, :] += 0.6
    photo[..., SIZE // 2:, :] -= 0.6
    return photo.clamp(-1, 1)


def test_sources_are_whole_known_patches_and_their_mirrors():
    image = torch.rand(1, 3, SIZE, SIZE) * 0.5 + 0.5  # known pixels in [0.5, 1]
    masked, mask = masked_input(image, 0.4)  # the hole is 0
    sources = SourcePatches(masked, masked, 1 - mask, 5)
    assert sources.patches.min() >= 0.5  # no patch reaches into the hole
    square = int(SIZE * 0.4)
    assert len(sources.patches) == 2 * 2 * (square - 4) ** 2  # two squares, each and its mirror
    assert set(sources.centres[:, 0].tolist()) == {0, 1}
    images, knowns = known_pyramid(masked, 1 - mask, 3)
    assert [i.shape[-1] for i in images] == [48, 24, 12] and images[-1][knowns[-1].expand_as(images[-1]) > 0].min() > 0.49


def test_the_fill_keeps_the_known_pixels_and_copies_every_hole_pixel_from_them():
    photo = two_tone_photo()
    masked, mask = masked_input(photo, 0.4)
    out = guided_patch_synthesis(masked, mask, masked, patch=5, levels=2, iterations=(3, 1))
    assert out.shape == photo.shape
    assert torch.equal(out * (1 - mask), masked * (1 - mask))
    known_colours = {tuple(c) for c in masked[0].permute(1, 2, 0)[mask[0, 0] == 0].tolist()}
    hole_colours = [tuple(c) for c in out[0].permute(1, 2, 0)[mask[0, 0] == 1].tolist()]
    assert all(c in known_colours for c in hole_colours)  # the hard final vote: photo pixels, no averaged blur
    soft = guided_patch_synthesis(masked, mask, masked, patch=5, levels=2, iterations=(3, 1), hard_final=False)
    assert sum(tuple(c) not in known_colours for c in soft[0].permute(1, 2, 0)[mask[0, 0] == 1].tolist()) > 100


def test_the_guide_decides_where_the_bright_texture_goes():
    photo = two_tone_photo()
    masked, mask = masked_input(photo, 0.4)
    bright_top = torch.full_like(photo, -0.6)
    bright_top[..., :SIZE // 2, :] = 0.6
    hole = mask[0, 0] == 1
    top = torch.zeros(SIZE, SIZE, dtype=torch.bool)
    top[:SIZE // 2] = True
    for guide, top_is_bright in ((bright_top, True), (-bright_top, False)):
        out = guided_patch_synthesis(masked, mask, guide, patch=5, levels=2, iterations=(4, 1), guide_weight=3.0)
        grey = out[0].mean(dim=0)
        upper, lower = grey[hole & top].mean(), grey[hole & ~top].mean()
        assert (upper > lower + 0.6) if top_is_bright else (lower > upper + 0.6), (guide.mean(), upper, lower)


def test_bad_iterations_are_refused():
    masked, mask = masked_input(two_tone_photo(), 0.4)
    with pytest.raises(ValueError, match="one count >= 1 per level"):
        guided_patch_synthesis(masked, mask, masked, levels=3, iterations=(3, 2))
    with pytest.raises(ValueError, match="one count >= 1 per level"):
        guided_patch_synthesis(masked, mask, masked, levels=2, iterations=(3, 0))
    with pytest.raises(ValueError, match="hold no whole 5-px patch at the coarsest level"):
        guided_patch_synthesis(masked, mask, masked, patch=5, levels=3, iterations=(3, 2, 1))


def test_the_probe_prints_a_row_per_guide_weight(data, tmp_path, capsys):
    from benchmarks.probe_patch_synthesis import main as probe_main, parse_args as probe_args
    from models import GeneratorConfig, UNetGenerator
    from utils.loading import export_generator
    from utils.cli import run
    torch.manual_seed(0)
    path = export_generator(UNetGenerator(GeneratorConfig(64, 8)), {"image_size": 64, "crop_ratio": 0.4},
                            tmp_path / "g.pth")
    probe_main(probe_args(["--test_dir", str(data / "test"), "--checkpoint", str(path), "--guide_weight", "0,3",
                           "--patch", "5", "--iterations", "2,1", "--sheet", str(tmp_path / "sheet.png")]))
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| guide weight")]
    assert [row.split("|")[1].strip() for row in rows] == ["guide weight 0", "guide weight 3"]
    assert (tmp_path / "sheet.png").stat().st_size > 0
    assert run(probe_main, probe_args, ["--test_dir", str(data / "test"), "--checkpoint", str(path),
                                        "--patch", "4"]) == 2
    assert "--patch an odd side >= 3" in capsys.readouterr().err
    assert run(probe_main, probe_args, ["--test_dir", str(data / "test"), "--checkpoint", str(path)]) == 2
    assert "use fewer levels or a smaller patch" in capsys.readouterr().err  # 3 levels of a 64-px image

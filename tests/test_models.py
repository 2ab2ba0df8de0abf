"""U-Net generator and PatchGAN discriminator: shapes, known pixels, sizes."""
import pytest
import torch

from data.masks import masked_input
from models import GeneratorConfig, PatchDiscriminator, UNetGenerator


@pytest.mark.parametrize("size,depth", [(64, 6), (128, 7)])
def test_generator_shapes_and_known_pixels(size, depth):
    torch.manual_seed(0)
    pix2pix = GeneratorConfig(image_size=size, ngf=8, norm="batch", upsampling="transpose", res_blocks=0,
                              harmonic=False, texture_noise=0)
    generator = UNetGenerator(pix2pix).eval()
    assert generator.depth == depth  # bottleneck at 1x1 whatever the size
    image = torch.rand(2, 3, size, size) * 2 - 1
    masked, mask = masked_input(image, 0.4)
    out = generator(masked, mask)
    assert out.shape == (2, 3, size, size)
    assert out.min() >= -1 and out.max() <= 1
    known = (1 - mask).expand_as(out).bool()
    assert torch.equal(out[known], image[known]), "known pixels must be kept exactly"
    assert not torch.equal(out[~known], masked[~known]), "the hole must be filled"


def test_generator_document_configuration_depth():
    assert UNetGenerator(GeneratorConfig(image_size=256, ngf=4)).depth == 8  # 8 stride-2 levels at 256^2


def test_generator_rejects_other_sizes():
    with pytest.raises(ValueError):
        GeneratorConfig(image_size=100)


def test_discriminator_patch_grid():
    d = PatchDiscriminator(ndf=8)
    for size in (64, 128):
        x = torch.zeros(2, 3, size, size)
        assert d(x, torch.ones(2, 1, size, size), x).shape == (2, 1, size // 8 - 2, size // 8 - 2)


def test_discriminator_receptive_field_is_70():
    # A gradient from one output logit reaches exactly a 70x70 input window.
    d = PatchDiscriminator(ndf=4).eval()
    x = torch.zeros(1, 3, 128, 128, requires_grad=True)
    d(x, torch.zeros(1, 1, 128, 128), torch.zeros(1, 3, 128, 128))[0, 0, 7, 7].backward()
    rows = x.grad.abs().sum(dim=(0, 1, 3)).nonzero()
    assert rows.max() - rows.min() + 1 == 70

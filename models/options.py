"""What the command lines offer, importable without torch: the generator's architecture and the names of
the choices behind --norm, --perceptual, --baseline, --scheduler and the like.

The scripts build their parsers from these and refuse a bad flag or value before torch is imported (in
well under a second); the modules that implement each choice import the same names, so the two cannot
drift apart.
"""
import math
from dataclasses import dataclass

NORMS = ("batch", "group", "instance")  # models.gan.norm_layer
UPSAMPLING = ("transpose", "resize")  # models.gan.UpBlock
GAN_LOSSES = ("bce", "hinge", "lsgan")  # losses.AdversarialLoss
PERCEPTUAL_KINDS = ("effnet", "effnet_deep", "vgg19", "none")  # losses.build_perceptual_loss
AUGMENTATIONS = ("color", "translation", "cutout")  # models.projected.diff_augment (DiffAugment's policies)
BASELINE_NAMES = ("mean", "telea", "harmonic", "shiftmap", "fsr")  # models.baselines.BASELINES
SAMPLERS = ("ddim", "dpm", "ddpm")  # models.diffusion.make_sampler
BETA_SCHEDULES = ("squaredcos_cap_v2", "linear")  # models.diffusion.make_noise_scheduler


@dataclass(frozen=True)
class GeneratorConfig:
    """The generator's architecture. The defaults are the shipped model's (checkpoints/gan_scenery_128.pth);
    checkpoints store these fields as "model_args" (models/loading.py rebuilds the network from them).
    The fields are explained in `UNetGenerator`."""

    image_size: int = 128
    ngf: int = 32
    norm: str = "group"
    upsampling: str = "resize"
    res_blocks: int = 2
    harmonic: bool = True
    texture_noise: int = 8
    attention: bool = False
    exemplar: bool = False
    exemplar_guide: float = 0.0
    exemplar_normalise: bool = False

    def __post_init__(self):
        depth = int(math.log2(self.image_size)) if self.image_size > 0 else 0
        if 2 ** depth != self.image_size or depth < 3:
            raise ValueError(f"image_size must be a power of two >= 8, got {self.image_size}")
        if self.norm not in NORMS:
            raise ValueError(f"unknown norm {self.norm!r}; choose from {NORMS}")
        if self.upsampling not in UPSAMPLING:
            raise ValueError(f"unknown upsampling {self.upsampling!r}; choose from {UPSAMPLING}")
        if self.texture_noise and not self.harmonic:
            raise ValueError("texture_noise adds to the residual of the harmonic start: it needs harmonic=True")
        if self.attention and self.image_size < 16:
            raise ValueError("attention works on the S/4 decoder level: image_size must be >= 16")
        if self.exemplar and not self.harmonic:
            raise ValueError("exemplar texture adds to the residual of the harmonic start: it needs harmonic=True")
        if (self.exemplar_guide or self.exemplar_normalise) and not self.exemplar:
            raise ValueError("exemplar_guide and exemplar_normalise are options of the exemplar layer: they need exemplar=True")
        if self.exemplar_guide < 0:
            raise ValueError(f"exemplar_guide is a colour temperature >= 0 (0: random patches), got {self.exemplar_guide}")

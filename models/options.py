"""What the command lines offer, importable without torch: the generator's architecture and the names of
the choices behind --norm, --perceptual, --baseline, --scheduler and the like.

The scripts build their parsers from these and refuse a bad flag or value before torch is imported (in
well under a second); the modules that implement each choice import the same names, so the two cannot
drift apart.
"""
import math
from dataclasses import dataclass

NORMS = ("batch", "group", "instance")  # models.gan.norm_layer
UPSAMPLING = ("transpose", "resize", "bilinear")  # models.gan.upsample_conv
RESIZE_MODES = {"resize": "nearest", "bilinear": "bilinear"}  # the resize kinds -> their F.interpolate mode
GAN_LOSSES = ("bce", "hinge", "lsgan")  # losses.AdversarialLoss
PERCEPTUAL_KINDS = ("effnet", "effnet_deep", "vgg19", "none")  # losses.build_perceptual_loss
AUGMENTATIONS = ("color", "translation", "cutout")  # models.projected.diff_augment (DiffAugment's policies)
BASELINE_NAMES = ("mean", "telea", "harmonic", "shiftmap", "fsr")  # models.baselines.BASELINES
SAMPLERS = ("ddim", "dpm", "ddpm")  # models.diffusion.make_sampler
BETA_SCHEDULES = ("squaredcos_cap_v2", "linear")  # models.diffusion.make_noise_scheduler
# The side of the Laplacian pyramid's low-pass level that the realism metrics stop at (utils/realism.py: 128, 64,
# 32 px and this): the layout that coarse_stage_layout takes from the coarse stage.
LAYOUT_SIDE = 16
# models.detail_map.detail_map_inputs: its input groups, in order, and their channels.
DETAIL_MAP_GROUPS = {"s8": 40, "s16": 112, "s32": 320, "own": 1, "prior": 2, "colour": 3, "hole": 1, "position": 2}


@dataclass(frozen=True)
class GeneratorConfig:
    """The generator's architecture. The defaults are the shipped model's (checkpoints/gan_scenery_128.pth);
    checkpoints store these fields as "model_args" (utils/loading.py rebuilds the network from them).
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
    exemplar_coarse: bool = False
    exemplar_prior: bool = False
    noise_injection: int = 0
    context_features: bool = False
    context_upsample: int = 1
    dropout: float = 0.0
    detail_smoothing: float = 0.0
    detail_smoothing_bands: int = 1
    coarse_stage: str = ""
    coarse_stage_sha256: str = ""
    coarse_stage_lowpass: int = 0
    coarse_stage_layout: float = 0.0

    @classmethod
    def from_flags(cls, flags: dict) -> "GeneratorConfig":
        """The architecture from main.py's flags (a run's, or an older checkpoint's config). A flag that is not
        there did not exist when such a checkpoint was written, so it takes the value that reproduces the model
        of that time (the first shipped model was pix2pix's: batch norm, transposed convolutions, no residual
        blocks, grey start, no texture head, no attention). detail_smoothing is not read from flags: it is an
        inference setting that only an export's model_args carry (main.py --export ... --detail_smoothing S), so
        a run's flags build it off. ValueError on a combination that cannot be built."""
        flags = {"norm": "batch", "upsampling": "transpose", "res_blocks": 0, "harmonic_start": False,
                 "texture_noise": 0, "attention": False, "exemplar_texture": False, "exemplar_guide": 0.0,
                 "exemplar_normalise": False, "exemplar_coarse": False, "exemplar_prior": False,
                 "noise_injection": 0, "context_features": False, **flags}
        coarse_stage, coarse_sha256 = flags.get("coarse_stage") or "", flags.get("coarse_stage_sha256") or ""
        coarse_lowpass = flags.get("coarse_stage_lowpass") or 0  # run 69 (the first two-stage run) had none
        coarse_layout = flags.get("coarse_stage_layout") or 0.0  # runs 69-70 had none
        context_upsample = flags.get("context_upsample") or 1  # runs before 86 had none
        dropout = flags.get("dropout") or 0.0  # runs before 88 had none
        return cls(image_size=flags["image_size"], ngf=flags["ngf"], norm=flags["norm"],
                   upsampling=flags["upsampling"], res_blocks=flags["res_blocks"], harmonic=flags["harmonic_start"],
                   texture_noise=flags["texture_noise"], attention=flags["attention"],
                   exemplar=flags["exemplar_texture"], exemplar_guide=flags["exemplar_guide"],
                   exemplar_normalise=flags["exemplar_normalise"], exemplar_coarse=flags["exemplar_coarse"],
                   exemplar_prior=flags["exemplar_prior"], noise_injection=flags["noise_injection"],
                   context_features=flags["context_features"], context_upsample=context_upsample,
                   dropout=dropout, coarse_stage=coarse_stage,
                   coarse_stage_sha256=coarse_sha256, coarse_stage_lowpass=coarse_lowpass,
                   coarse_stage_layout=coarse_layout)

    def __post_init__(self):
        depth = int(math.log2(self.image_size)) if self.image_size > 0 else 0
        if 2 ** depth != self.image_size or depth < 3:
            raise ValueError(f"image_size must be a power of two >= 8, got {self.image_size}")
        if self.ngf < 1 or self.res_blocks < 0 or self.texture_noise < 0 or self.noise_injection < 0:
            raise ValueError(f"ngf must be >= 1 and res_blocks, texture_noise and noise_injection >= 0, got "
                             f"{self.ngf}, {self.res_blocks}, {self.texture_noise} and {self.noise_injection}")
        if self.norm not in NORMS:
            raise ValueError(f"unknown norm {self.norm!r}; choose from {NORMS}")
        if self.upsampling not in UPSAMPLING:
            raise ValueError(f"unknown upsampling {self.upsampling!r}; choose from {UPSAMPLING}")
        if self.texture_noise and not self.harmonic:
            raise ValueError("texture_noise adds to the residual of the harmonic start: it needs harmonic=True")
        if self.attention and self.image_size < 16:
            raise ValueError("attention works on the S/4 decoder level: image_size must be >= 16")
        if self.context_features and self.image_size < 32:
            raise ValueError("context_features join the encoder at S/4 to S/32: image_size must be >= 32")
        if self.context_upsample not in (1, 2):
            raise ValueError(f"context_upsample is 1 or 2 (the start image's scale for the feature network), "
                             f"got {self.context_upsample}")
        if self.context_upsample != 1 and not self.context_features:
            raise ValueError("context_upsample scales the feature network's input: it needs context_features")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout is a probability in [0, 1), got {self.dropout}")
        if self.coarse_stage and not self.harmonic:
            raise ValueError("a coarse stage replaces the harmonic start the residual adds to: it needs harmonic=True")
        if self.coarse_stage and not self.coarse_stage_sha256:
            raise ValueError("coarse_stage needs coarse_stage_sha256, the hash of the file it names "
                             "(utils.files.file_sha256), so that another file under that name is refused")
        if self.coarse_stage_lowpass and not self.coarse_stage:
            raise ValueError("coarse_stage_lowpass low-passes the coarse stage's fill: it needs a coarse_stage")
        if not 0 <= self.coarse_stage_lowpass <= depth - 3:
            raise ValueError(f"coarse_stage_lowpass is a count of pyrDowns, 0 to {max(depth - 3, 0)} at "
                             f"{self.image_size}² (the smallest level >= 8 px), got {self.coarse_stage_lowpass}")
        if self.coarse_stage_layout and not self.coarse_stage:
            raise ValueError("coarse_stage_layout takes the layout from the coarse stage's fill: it needs a coarse_stage")
        if not 0 <= self.coarse_stage_layout <= 1:
            raise ValueError(f"coarse_stage_layout is a share of the layout, 0 to 1, got {self.coarse_stage_layout}")
        if self.coarse_stage_layout and self.image_size < 2 * LAYOUT_SIDE:
            raise ValueError(f"coarse_stage_layout sets the {LAYOUT_SIDE}-px pyramid level: image_size must be >= "
                             f"{2 * LAYOUT_SIDE}, got {self.image_size}")
        if self.exemplar and not self.harmonic:
            raise ValueError("exemplar texture adds to the residual of the harmonic start: it needs harmonic=True")
        options = (self.exemplar_guide, self.exemplar_normalise, self.exemplar_coarse, self.exemplar_prior)
        if any(options) and not self.exemplar:
            raise ValueError("exemplar_guide, exemplar_normalise, exemplar_coarse and exemplar_prior are options of "
                             "the exemplar layer: they need exemplar=True (--exemplar_texture)")
        if not 0 <= self.noise_injection <= 3:
            raise ValueError(f"noise_injection is how many decoder maps get noise (0-3: S/2, S/4, S/8), "
                             f"got {self.noise_injection}")
        if self.detail_smoothing < 0:
            raise ValueError(f"detail_smoothing is a Gaussian's sigma in 8-px blocks (0: off), got {self.detail_smoothing}")
        if self.detail_smoothing_bands < 1:
            raise ValueError(f"detail_smoothing_bands is how many of the finest Laplacian bands the smoothing scales "
                             f"(>= 1), got {self.detail_smoothing_bands}")
        if self.exemplar_guide < 0:
            raise ValueError(f"exemplar_guide is a colour temperature >= 0 (0: random patches), got {self.exemplar_guide}")

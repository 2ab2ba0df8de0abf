"""Plain nn.Modules: constructor arguments only, no I/O, no device handling."""
from models.gan import GeneratorConfig, PatchDiscriminator, UNetGenerator, count_parameters  # noqa: F401

"""Plain nn.Modules: constructor arguments only, no I/O, no device handling.

`from models import UNetGenerator` still works, but nothing heavy is imported with the package itself
(PEP 562's module __getattr__): `models.options` stays importable without torch, for the command lines'
fast checks.
"""
_GAN_NAMES = ("GeneratorConfig", "MeanFill", "PatchDiscriminator", "UNetGenerator", "count_parameters")


def __getattr__(name):
    if name in _GAN_NAMES:
        from models import gan
        return getattr(gan, name)
    raise AttributeError(f"module 'models' has no attribute {name!r}")

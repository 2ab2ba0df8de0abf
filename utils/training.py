"""Training plumbing shared by main.py and diffusion.py: accelerator, data, logs, sample grids."""
import contextlib
import csv
import shutil
import signal
import sys
import threading
import time
from pathlib import Path

from torch.utils.data import DataLoader, RandomSampler
from tqdm.auto import tqdm

from data.datasets import ImageFolderDataset
from data.images import check_image_size
from data.masks import apply_mask, check_crop_ratio, parse_mask_kinds
from utils.checkpoint import load_checkpoint, save_checkpoint
from utils.cli import given_flags, photo_pixel_limit
from utils.errors import InputError
from utils.images import save_grid


def make_accelerator(mixed_precision: str = "no", cpu: bool = False):
    """The one place where device and precision are decided (CPU, one GPU, or `accelerate launch`)."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState
    # accelerate keeps one precision per process; a process that trains twice (benchmarks/compare.py,
    # the tests) may ask for another one. The distributed state (PartialState) is kept.
    AcceleratorState._reset_state()
    return Accelerator(mixed_precision=mixed_precision, cpu=cpu)


# A run's bookkeeping, kept on resume unless given again (the recipe keys cannot be changed at all). The
# learning-rate decay is among them: a constant-rate run is run until its val curve levels off and then ended
# with a decay (pix2pix's schedule, decided late), which resuming with --lr_decay_start E --epochs N does.
RUN_KEYS = ("checkpoint_dir", "results_dir", "val_dir", "save_every", "log_interval",  # a missing val_dir is dropped
            "lr_decay_start")


def start_run(args, kind: str, recipe_keys, accelerator):
    """Load the checkpoint to resume from (if --checkpoint_path), then validate the flags and the folders.

    On resume the recipe flags (`recipe_keys`) come from the checkpoint, not the command line, so that
    a resumed run is the same run: they are printed, and a recipe flag given with another value is
    refused. The run's folders, cadence and learning-rate decay (`RUN_KEYS`) are the checkpoint's unless given
    again (a change is printed); the others (--epochs, --max_minutes, ...) stay as given. A run that will train
    must not mix with another run's files (`check_run_folders`). With several processes (`accelerate launch`) every
    one loads the checkpoint and checks the folders; only the main process deletes (--overwrite) and prints.
    Returns (checkpoint dict or None, mask kinds).
    """
    resume = load_checkpoint(args.checkpoint_path, kinds=(kind,)) if args.checkpoint_path else None
    if resume:
        given, config = given_flags(args), resume["config"]
        keys = [k for k in recipe_keys if k in config]
        conflicts = [f"--{k} {getattr(args, k)} (the checkpoint has {config[k]})" for k in keys
                     if k in given and not _same(k, getattr(args, k), config[k])]
        if conflicts:
            raise InputError(f"resuming {args.checkpoint_path} keeps its recipe: {', '.join(conflicts)}; drop the "
                             "flag to continue that run, or start a new run without --checkpoint_path")
        for key in keys:
            setattr(args, key, config[key])
        accelerator.print(f"resuming {args.checkpoint_path} (epoch {resume['epoch']}) with its recipe: "
                          + " ".join(f"--{k} {config[k]}" for k in keys))
        # Where the run writes and how often it saves and validates also continue, unless given again: a
        # resumed run without --checkpoint_dir would otherwise write into the default folder, and one
        # without --val_dir would silently stop validating.
        # The checkpoints go on beside the one resumed from (it may have been moved since it was written).
        run = {**config, "checkpoint_dir": str(Path(args.checkpoint_path).parent)}
        kept = [k for k in RUN_KEYS if k in run and hasattr(args, k) and k not in given
                and (k != "val_dir" or run[k] is None or Path(run[k]).is_dir())]
        for key in kept:
            setattr(args, key, run[key])
        if kept:
            accelerator.print("and its run's " + " ".join(f"--{k} {run[k]}" for k in kept))
        changed = [f"--{k} {getattr(args, k)} (was {run[k]})" for k in RUN_KEYS
                   if k in run and k in given and not _same(k, getattr(args, k), run[k])]
        if changed:
            accelerator.print("changed for the rest of the run: " + " ".join(changed))
    check_crop_ratio(args.crop_ratio)
    check_image_size(args.image_size)
    mask_kinds = parse_mask_kinds(args.mask_kinds)
    if not resume or resume["epoch"] < args.epochs:
        # Every process looks (it only reads), so that all refuse together instead of the others dying on a lost
        # connection; after all have looked, the main process alone deletes (--overwrite) and prints. Under
        # several processes the main one says why before the barrier: the launcher stops the rest as soon as one
        # exits, which could cut the message off.
        try:
            to_delete, refusal = check_run_folders(args, resume), None
        except InputError as exc:
            if accelerator.num_processes == 1:
                raise
            to_delete, refusal = [], exc
        if refusal is not None and accelerator.is_main_process:
            print(f"error: {refusal}", file=sys.stderr, flush=True)
        accelerator.wait_for_everyone()
        if refusal is not None:
            sys.exit(2)
        if accelerator.is_main_process:
            delete_run_files(args, to_delete)
            print(f"writing checkpoints to {Path(args.checkpoint_dir) / 'checkpoint_epoch_N.pth'} (every "
                  f"{args.save_every} epochs and the last), losses, loss curve and sample grids to "
                  f"{Path(args.results_dir) / 'train'}")
    return resume, mask_kinds


def _same(key: str, given, stored) -> bool:
    if key.endswith("_dir") and given is not None and stored is not None:
        return Path(given).resolve() == Path(stored).resolve()
    return given == stored


def run_files(args) -> list:
    """Files a training run writes into --checkpoint_dir and <results_dir>/train that already exist."""
    checkpoints, logs = Path(args.checkpoint_dir), Path(args.results_dir) / "train"
    found = sorted(checkpoints.glob("checkpoint_epoch_*.pth")) + sorted(checkpoints.glob("checkpoint_interrupted.pth"))
    found += [p for p in (logs / "losses.csv", logs / "loss_curve.png", logs / "val_metrics.csv") if p.is_file()]
    found += sorted((logs / "samples").glob("epoch_*.png"))
    return found + ([logs / "val"] if (logs / "val").is_dir() else [])


def check_run_folders(args, resume) -> list:
    """Refuse to write over (or mix with) another run's checkpoints, losses and samples; it only reads. Returns
    the files `delete_run_files` removes before the run starts: the other run's under --overwrite, else none.

    Allowed: empty folders; resuming from a checkpoint that lies in --checkpoint_dir (the same run
    continues); --overwrite.
    """
    found = run_files(args)
    same_run = resume is not None and Path(args.checkpoint_path).resolve().parent == \
        Path(args.checkpoint_dir).resolve()
    if not found or same_run:
        return []
    if not getattr(args, "overwrite", False):
        latest = max((p for p in found if p.name.startswith("checkpoint_epoch_")),
                     key=lambda p: int(p.stem.rsplit("_", 1)[1]), default=None)
        hint = f"--checkpoint_path {latest} to resume it, " if latest else ""
        raise InputError(f"{args.checkpoint_dir} / {Path(args.results_dir) / 'train'} hold another run's files "
                         f"({len(found)}, e.g. {found[0]}): pass {hint}other --checkpoint_dir and --results_dir, "
                         "or --overwrite to delete them and start again")
    return found


def delete_run_files(args, found: list) -> None:
    """--overwrite: remove the other run's files that `check_run_folders` found."""
    if not found:
        return
    for path in found:
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    print(f"--overwrite: deleted {len(found)} files of the previous run in {args.checkpoint_dir} and "
          f"{Path(args.results_dir) / 'train'}")


def run_config(args) -> dict:
    """The run's flags as plain Python values: what every checkpoint stores as its "config"."""
    return {k: v for k, v in vars(args).items() if isinstance(v, (int, float, str, bool, type(None)))}


def make_train_loader(args, mask_kinds, show_progress: bool = True) -> DataLoader:
    """Shuffled training batches. All randomness (order, crops, masks) comes from torch's global RNG,
    which checkpoints store, so a resumed run sees exactly the batches of an uninterrupted one."""
    dataset = ImageFolderDataset(args.train_dir, args.image_size, args.crop_ratio, train=True,
                                 max_pixels=photo_pixel_limit(args),
                                 mask_kinds=mask_kinds, repeat=args.repeat, show_progress=show_progress,
                                 min_crop_scale=getattr(args, "min_crop_scale", ImageFolderDataset.MIN_CROP_SCALE),
                                 color_jitter=getattr(args, "color_jitter", 0.0))
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



class EpochLog:
    """One epoch's batches behind a progress bar (main process only), and its rows of losses.csv.

        for batch in (epoch_log := EpochLog(loader, epoch, args.epochs, loss_log, args.log_interval, accelerator)):
            losses = train_step(batch, ...)
            step += 1
            epoch_log.record(step, losses, len(batch["image"]))

    `record` shows the losses on the bar and appends a row to `loss_log` (None on other processes) every
    `log_interval` steps and at the epoch's last batch, so that short runs log too, with the images per
    second since the previous step (data loading included).
    """

    def __init__(self, loader, epoch: int, epochs: int, loss_log, log_interval: int, accelerator):
        self.progress = tqdm(loader, desc=f"epoch {epoch}/{epochs}", disable=not accelerator.is_main_process)
        self.epoch, self.batches, self.loss_log, self.log_interval = epoch, len(loader), loss_log, log_interval
        self.processes, self.index, self.tick = accelerator.num_processes, -1, time.perf_counter()

    def __iter__(self):
        for self.index, batch in enumerate(self.progress):
            yield batch

    def record(self, step: int, losses: dict, batch_images: int) -> None:
        self.progress.set_postfix({k: f"{v:.4g}" for k, v in losses.items()})
        if self.loss_log is not None and (step % self.log_interval == 0 or self.index == self.batches - 1):
            rate = batch_images * self.processes / (time.perf_counter() - self.tick)
            self.loss_log.append({"epoch": self.epoch, "step": step, **losses, "images_per_s": rate})
        self.tick = time.perf_counter()


class TimeBudget:
    """--max_minutes: whether training should stop after the epoch that just ended.

    Measured from the construction (the start of the training loop); checked once per epoch, so a run stops
    at an epoch boundary with a checkpoint and may overrun the budget by up to one epoch. With several
    processes the main process's clock decides for all (gathered), so that they leave the loop together.
    """

    clock = staticmethod(time.monotonic)  # seconds; a test replaces it

    def __init__(self, minutes=None):
        self.minutes = minutes
        self.seconds = None if minutes is None else 60.0 * minutes
        self.started = self.clock()

    def stop_message(self, epoch: int, epochs: int, checkpoint) -> str:
        return (f"stopped after epoch {epoch} of {epochs}: --max_minutes {self.minutes:g} spent; resume with "
                f"--checkpoint_path {checkpoint}")

    def spent(self, accelerator=None) -> bool:
        if self.seconds is None:
            return False
        over = self.clock() - self.started >= self.seconds
        if accelerator is None or accelerator.num_processes == 1:
            return over
        import torch
        flag = torch.tensor([1.0 if over and accelerator.is_main_process else 0.0], device=accelerator.device)
        return bool(accelerator.gather(flag).max() > 0)


def _terminated(signum, frame):
    raise KeyboardInterrupt


@contextlib.contextmanager
def checkpoint_on_interrupt(accelerator, make_state, checkpoint_dir, loss_log=None):
    """Ctrl-C inside the block writes <checkpoint_dir>/checkpoint_interrupted.pth (make_state() gives the
    weights so far and the last finished epoch, so resuming from it re-runs the unfinished one), flushes the
    loss log, and exits with status 130. SIGTERM does the same: `kill PID`, `timeout` and job schedulers send it,
    and a run started in the background (`cmd &` without job control) ignores SIGINT."""
    previous = None
    if threading.current_thread() is threading.main_thread():  # signal handlers live in the main thread only
        previous = signal.signal(signal.SIGTERM, _terminated)
    try:
        yield
    except KeyboardInterrupt:
        if accelerator.is_main_process:
            path = save_checkpoint(make_state(), Path(checkpoint_dir) / "checkpoint_interrupted.pth")
            if loss_log is not None:
                loss_log.flush()
            print(f"\ninterrupted: saved {path} (resume with --checkpoint_path {path})", file=sys.stderr)
        raise SystemExit(130)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)

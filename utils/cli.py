"""Command-line plumbing shared by main.py and diffusion.py."""
import argparse
import sys

from utils.errors import InputError


class Parser(argparse.ArgumentParser):
    """ArgumentParser whose `--snake_case` flags also accept `--kebab-case` (both spellings work)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(**kwargs)

    def add_argument(self, *names, **kwargs):
        extra = [n.replace("_", "-") for n in names if n.startswith("--") and "_" in n]
        return super().add_argument(*names, *[n for n in extra if n not in names], **kwargs)


def add_shared_args(parser: Parser, default_size: int, default_batch: int, default_lr: float) -> None:
    """Flags that mean the same thing in main.py and diffusion.py."""
    parser.add_argument("--mode", choices=("train", "eval", "eval_2"), default="train")
    parser.add_argument("--epochs", type=int, default=30, help="train until this epoch (total, also when resuming)")
    parser.add_argument("--checkpoint_path", default=None,
                        help="train: resume from it; eval/eval_2: model to use")
    parser.add_argument("--train_dir", default="data/scenery/train", help="folder of training images (recursive)")
    parser.add_argument("--test_dir", default="data/scenery/test", help="folder of test images for eval")
    parser.add_argument("--image1", help="eval_2: photo giving the bottom-left patch")
    parser.add_argument("--image2", help="eval_2: photo giving the top-right patch")
    parser.add_argument("--output", help="eval_2: write the filled image to this file instead of results_dir")
    parser.add_argument("--results_dir", default="results", help="eval outputs and training logs/samples")
    parser.add_argument("--checkpoint_dir", default="checkpoints", help="where training writes checkpoints")
    parser.add_argument("--image_size", type=int, default=default_size, help="square side S: 64, 128, 256 or 512")
    parser.add_argument("--crop_ratio", type=float, default=0.4,
                        help="side of each known square as a fraction of S, in (0, 0.5]")
    parser.add_argument("--batch_size", type=int, default=default_batch)
    parser.add_argument("--lr", type=float, default=default_lr)
    parser.add_argument("--num_workers", type=int, default=0, help="DataLoader worker processes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save_every", type=int, default=5, help="write a checkpoint every N epochs (and the last)")
    parser.add_argument("--log_interval", type=int, default=10, help="log losses to CSV every N steps")
    parser.add_argument("--mixed_precision", choices=("no", "bf16", "fp16"), default="no",
                        help="autocast precision (bf16 is fast on AVX-512-BF16 CPUs and on recent GPUs)")
    parser.add_argument("--repeat", type=int, default=1,
                        help="passes over the training folder per epoch (random crops differ); for small folders")
    parser.add_argument("--cpu", action="store_true", help="run on CPU even if a GPU is available")


def check_shared_args(parser: Parser, args) -> None:
    """Reject counts that cannot work, as a usage error naming the flags."""
    if args.epochs < 1 or args.batch_size < 1 or args.save_every < 1 or args.log_interval < 1:
        parser.error("--epochs, --batch_size, --save_every and --log_interval must be >= 1")


def run(main, parse_args, argv=None) -> int:
    """Parse, run, and turn bad input (InputError) into one `error: ...` line with exit status 2."""
    try:
        main(parse_args(argv))
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0

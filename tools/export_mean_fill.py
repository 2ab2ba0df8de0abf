"""Write one generator file whose fill is the per-pixel mean of several generators' fills (models.gan.MeanFill).

    python tools/export_mean_fill.py --export checkpoints/layout_mean_128.pth checkpoints/layout_stage_128.pth \\
        runs/layout_small/checkpoint_epoch_132.pth runs/layout_dropout_full/checkpoint_epoch_32.pth
    python benchmarks/score.py --test_dir data/scenery_large/val --floors "" --checkpoint mean=checkpoints/layout_mean_128.pth
    python tools/export_generator.py runs/layout_pinned/checkpoint_epoch_72.pth runs/pinned_on_mean.pth \\
        --coarse_stage checkpoints/layout_mean_128.pth

Unlike tools/average_checkpoints.py (one network, its weights averaged: only for checkpoints of one run's lineage),
this keeps every network and averages what they draw, so unrelated runs (other widths, other starts) combine; it
costs one forward pass per member. Its use is a layout stage: the mean of several layout stages' fills errs less at
the large scales than each one, and a two-stage generator (main.py --coarse_stage, or tools/export_generator.py
--coarse_stage) draws the texture on it. Averaging blurs what the members disagree on, so it is not for textured
fills. Each input contributes its EMA generator (as `main.py --mode eval` loads it), stored in fp16 (or --int8); the
file's config is the first input's, plus the inputs under "mean_of". It loads wherever a generator file does.
"""
import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from utils.errors import InputError  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoints", nargs="+", help="main.py training checkpoints or generator exports (two or more)")
    parser.add_argument("--export", required=True, help="where to write the mean-of-fills generator file")
    parser.add_argument("--int8", action="store_true", help="store the convolutions' kernels as int8 (else fp16)")
    return parser.parse_args(argv)


def main(args):
    from utils.files import check_checkpoint_path
    if len(args.checkpoints) < 2:
        raise InputError("give two or more generators: the file fills with the mean of their fills")
    for path in args.checkpoints:
        check_checkpoint_path(path, "the checkpoint list")
    from models.gan import MeanFill
    from utils.loading import export_generator, load_generator
    members, configs = zip(*(load_generator(path) for path in args.checkpoints))
    sizes = {member.config.image_size for member in members}
    if len(sizes) > 1:
        raise InputError(f"these generators fill different image sizes ({', '.join(f'{s}²' for s in sorted(sizes))}): "
                         "give generators trained at one --image_size")
    config = dict(configs[0], mean_of=[str(path) for path in args.checkpoints])
    path = export_generator(MeanFill(list(members)), config, args.export, int8=args.int8)
    print(f"exported the mean of the fills of {len(members)} generators to {path} "
          f"({path.stat().st_size / 1e6:.1f} MB, {'int8' if args.int8 else 'fp16'} weights)")


if __name__ == "__main__":
    from utils.cli import run
    sys.exit(run(main, parse_args))

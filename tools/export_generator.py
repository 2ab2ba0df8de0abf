"""Write the generator of a main.py training checkpoint (or of an export) as a generator-only file: the file that
eval, eval_2, the web page and the benchmarks load, with its config inside.

    python tools/export_generator.py runs/layout_only/checkpoint_interrupted.pth checkpoints/layout_stage_128.pth
    python tools/export_generator.py runs/layout_pinned/checkpoint_epoch_72.pth runs/layout_pinned/pick_int8.pth --int8
    python tools/export_generator.py runs/layout_pinned/checkpoint_epoch_72.pth runs/layout_pinned/swapped.pth \\
        --coarse_stage checkpoints/layout_soup_128.pth

The EMA weights are exported (`--raw`: the last iterate's). Large tensors are stored in fp16, or with `--int8` the
convolutions' kernels as int8 with one scale per output channel (a quarter of fp32; the network still computes in
float: score the export on a validation split, as any setting). A two-stage generator (`--coarse_stage`) carries its
frozen first stage inside the export, packed the same way, so the one file is the whole model; `--coarse_stage FILE`
puts another generator file in its place (training-free: the second stage was trained on the old one's fill, so
score the export on a validation split before using it). `--compress` deflates the file: the same weights, about a
tenth smaller for int8 ones (for a file that ships under a size bound), slower to write and load.
"""
import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="a main.py training checkpoint or generator export")
    parser.add_argument("export", help="where to write the generator-only file")
    parser.add_argument("--int8", action="store_true", help="store the convolutions' kernels as int8 (else fp16)")
    parser.add_argument("--raw", action="store_true", help="export the last iterate's weights, not the EMA copy")
    parser.add_argument("--compress", action="store_true",
                        help="deflate the file (lossless, the same weights; smaller, slower to write and load)")
    parser.add_argument("--coarse_stage", default=None,
                        help="a two-stage generator only: the generator file to embed as its first stage instead")
    return parser.parse_args(argv)


def main(args):
    from utils.files import check_checkpoint_path
    check_checkpoint_path(args.checkpoint, "the checkpoint")
    if args.coarse_stage:
        check_checkpoint_path(args.coarse_stage, "--coarse_stage")
    from utils.loading import export_generator, load_generator, with_coarse_stage
    generator, config = load_generator(args.checkpoint, use_ema=not args.raw)
    if args.coarse_stage:
        generator, config = with_coarse_stage(generator, config, args.coarse_stage)
    path = export_generator(generator, config, args.export, int8=args.int8, compress=args.compress)
    stages = "" if generator.coarse_stage is None else \
        f" and its first stage ({args.coarse_stage})" if args.coarse_stage else " and its embedded first stage"
    print(f"exported the generator{stages} of {args.checkpoint} to {path} ({path.stat().st_size / 1e6:.1f} MB, "
          f"{'int8' if args.int8 else 'fp16'} weights{', deflated' if args.compress else ''})")


if __name__ == "__main__":
    from utils.cli import run
    sys.exit(run(main, parse_args))

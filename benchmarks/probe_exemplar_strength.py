"""The strength of a generator's copied detail, on a validation split: its exemplar layer's gates (per band) and
its noise head scaled after training, every combination scored like `main.py --mode eval` (fp32).

    python benchmarks/probe_exemplar_strength.py --test_dir data/scenery_large/val \\
        --checkpoint runs/exemplar_128/checkpoint_epoch_18.pth --fine 1,1.3 --mid 1.5,2 --noise 1,0.5

Prints one markdown row per checkpoint and (fine, mid, coarse, noise) scale: hole PSNR, low-pass hole PSNR, sharpness,
detail placement, patch SWD (mean, then the 128 / 64 / 32 / 16 px levels), checkerboard. The strength a model
ships with is picked here, on val, and baked into its export (`main.py --export ... --exemplar_scale
FINE,MID[,COARSE] --texture_scale NOISE`), as the shipped model's texture strength was (docs/realistic_fills.md).
"""
import argparse
import itertools
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from utils.cli import numbers  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--test_dir", required=True, help="folder of photos (a validation split)")
    parser.add_argument("--checkpoint", action="append", required=True,
                        help="training checkpoint or export with an exemplar layer; repeat for several")
    parser.add_argument("--fine", type=numbers, default=[1.0], help="scales of the fine band's gates, comma-separated")
    parser.add_argument("--mid", type=numbers, default=[1.0], help="scales of the mid band's gates")
    parser.add_argument("--coarse", type=numbers, default=[1.0],
                        help="scales of the coarse band's gates (a layer trained with --exemplar_coarse)")
    parser.add_argument("--noise", type=numbers, default=[1.0], help="scales of the noise-fed texture head")
    parser.add_argument("--batch_size", type=int, default=15)
    return parser.parse_args(argv)


def main(args):
    from utils.files import check_checkpoint_path
    for path in args.checkpoint:
        check_checkpoint_path(path, "--checkpoint")
    from utils.loading import generator_fill, load_generator, scale_exemplar, scale_texture
    from utils.evaluation import SCORE_COLUMNS, evaluate_folder, markdown_head, markdown_scores
    print(markdown_head("checkpoint", "scales (fine / mid / coarse / noise)", SCORE_COLUMNS))
    with tempfile.TemporaryDirectory() as scratch:
        for path, fine, mid, coarse, noise in itertools.product(args.checkpoint, args.fine, args.mid, args.coarse,
                                                                args.noise):
            generator, config = load_generator(path)
            scale_exemplar(generator, fine, mid, coarse)
            scale_texture(generator, noise)
            summary = evaluate_folder(generator_fill(generator, "cpu", "no"), args.test_dir, config["image_size"],
                                      config["crop_ratio"], scratch, "cpu", batch_size=args.batch_size,
                                      save_images=False, desc=f"{Path(path).name} x{fine}/{mid}/{coarse}/{noise}")
            print(f"| {path} | {fine:g} / {mid:g} / {coarse:g} / {noise:g} | {markdown_scores(summary)} |", flush=True)


if __name__ == "__main__":
    from utils.cli import run
    sys.exit(run(main, parse_args))

"""Cost of the generator's harmonic start: the iterative solve, the cached exact operator, and the coarse solve.

    python benchmarks/bench_harmonic.py                  # 128, 256, 512 px, batch 16, 1 thread
    python benchmarks/bench_harmonic.py --sizes 256 --threads 2

For each size, on the gap masks of the first --batch photos of --photos: seconds for `harmonic_fill(tol=1e-3)`
by conjugate gradients (`use_operator=False`: the exact solve the generator ran first), by the cached operator
(`harmonic_operator`, a sparse LU of the hole's Laplacian; its first call builds it, later ones reuse it; sizes
whose operator would be too large say so), and `coarse_harmonic_fill` (what UNetGenerator runs: the operator or
iterations at <= 128 px, upsampled, 10 CG steps at full size), with the mean absolute difference of each from the
iterative solve inside the hole (images in [-1, 1]).
"""
import argparse
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from data.datasets import ImageFolderDataset  # noqa: E402
from models.harmonic import coarse_harmonic_fill, harmonic_fill, harmonic_operator  # noqa: E402
from utils.errors import InputError  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", default=str(ROOT / "data" / "scenery" / "test"))
    parser.add_argument("--sizes", default="128,256,512")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1)
    return parser.parse_args(argv)


def seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main(args):
    try:
        sizes = [int(size) for size in args.sizes.split(",")]
    except ValueError:
        raise InputError(f"--sizes {args.sizes!r}: give image sizes such as 128,256") from None
    if min(sizes) < 8 or args.batch < 1 or args.threads < 1:
        raise InputError("--sizes must be >= 8 px, --batch and --threads >= 1")
    torch.set_num_threads(args.threads)
    print(f"harmonic start, batch {args.batch}, {args.threads} thread(s), photos of {args.photos}:")
    for size in sizes:
        data = ImageFolderDataset(args.photos, size, 0.4, train=False)
        items = [data[i % len(data)] for i in range(args.batch)]
        image, mask = torch.stack([it["image"] for it in items]), torch.stack([it["mask"] for it in items])
        masked = image * (1 - mask)
        iterative_s = seconds(lambda: harmonic_fill(masked, mask, tol=1e-3, use_operator=False))
        iterative = harmonic_fill(masked, mask, tol=1e-3, use_operator=False)

        def hole_difference(fill):
            return float(((fill - iterative).abs() * mask).sum() / (3 * mask.sum()))

        line = f"  {size}^2: iterations {iterative_s:6.2f} s"
        build_s = seconds(lambda: harmonic_operator(mask[0, 0] > 0.5))
        if harmonic_operator(mask[0, 0] > 0.5) is None:
            line += ", operator: none (too large, or no SciPy)"
        else:
            operator_s = seconds(lambda: harmonic_fill(masked, mask, tol=1e-3))
            line += (f", operator {operator_s:6.3f} s ({iterative_s / operator_s:5.0f}x; built once in {build_s:.2f} s;"
                     f" |difference| {hole_difference(harmonic_fill(masked, mask)):.4f})")
        coarse_s = seconds(lambda: coarse_harmonic_fill(masked, mask, max_side=128, tol=1e-3))
        line += (f", coarse {coarse_s:5.2f} s ({iterative_s / coarse_s:4.1f}x; |difference| "
                 f"{hole_difference(coarse_harmonic_fill(masked, mask, max_side=128)):.4f})")
        print(line, flush=True)

if __name__ == "__main__":
    from utils.cli import run
    sys.exit(run(main, parse_args))

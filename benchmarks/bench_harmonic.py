"""Cost of the generator's harmonic start: the exact solve against the coarse one it uses.

    python benchmarks/bench_harmonic.py                  # 128, 256, 512 px, batch 16, 1 thread
    python benchmarks/bench_harmonic.py --sizes 256 --threads 2

For each size: seconds for `harmonic_fill(tol=1e-3)` (the exact solve, what the generator ran
before) and for `coarse_harmonic_fill` (solved at <= 128 px, upsampled, 10 CG steps at full size:
what UNetGenerator runs now), on the gap masks of the first --batch photos of --photos, and the mean
absolute difference between the two inside the hole (images in [-1, 1]).
"""
import argparse
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from data.datasets import ImageFolderDataset  # noqa: E402
from models.harmonic import coarse_harmonic_fill, harmonic_fill  # noqa: E402


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
    torch.set_num_threads(args.threads)
    print(f"harmonic start, batch {args.batch}, {args.threads} thread(s), photos of {args.photos}:")
    for size in (int(s) for s in args.sizes.split(",")):
        data = ImageFolderDataset(args.photos, size, 0.4, train=False)
        items = [data[i % len(data)] for i in range(args.batch)]
        image, mask = torch.stack([it["image"] for it in items]), torch.stack([it["mask"] for it in items])
        masked = image * (1 - mask)
        exact_s = seconds(lambda: harmonic_fill(masked, mask, tol=1e-3))
        coarse_s = seconds(lambda: coarse_harmonic_fill(masked, mask, max_side=128, tol=1e-3))
        exact, coarse = harmonic_fill(masked, mask, tol=1e-3), coarse_harmonic_fill(masked, mask, max_side=128)
        difference = ((exact - coarse).abs() * mask).sum() / (3 * mask.sum())
        print(f"  {size}^2: exact {exact_s:6.2f} s, coarse {coarse_s:5.2f} s ({exact_s / coarse_s:4.1f}x), "
              f"mean |difference| in the hole {difference:.4f}", flush=True)


if __name__ == "__main__":
    main(parse_args())

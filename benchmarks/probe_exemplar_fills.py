"""Training-free probes of the exemplar direction (docs/realistic_fills.md, realistic fills): the GAN's layout with a
photograph's own texture laid over it. Prints the realism metrics on a folder (a benchmark, not a test).

    python benchmarks/probe_exemplar_fills.py --test_dir data/scenery_large/val

Two fills, both on the shipped generator's (or --checkpoint's) output g, at its size:
  * bands: the Laplacian-pyramid low-pass of g (--steps pyrDown/pyrUp, 3: its 16-px level at 128²) plus the finer
    bands of OpenCV's exemplar-based shift-map fill (the hand-made fill of the realistic-fills issue);
  * transfer: the same low-pass of g plus the finer bands of blocks copied from the known squares, each hole
    block (--block px, every --stride px) taking the known block whose low-pass colours are nearest to g's
    there, overlaps cross-faded over block - stride px (no seams; a wide fade averages unrelated texture away).
The known pixels are kept. Every score comes from utils.evaluation.evaluate_folder (main.py --mode eval's code).
"""
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from data.masks import keep_known  # noqa: E402
from models.baselines import BASELINES  # noqa: E402
from utils.loading import SHIPPED_MODEL, generator_fill, load_generator  # noqa: E402
from utils.cli import Parser, run  # noqa: E402
from utils.errors import InputError  # noqa: E402
from utils.evaluation import evaluate_folder, format_swd  # noqa: E402
from utils.realism import pyramid_lowpass as lowpass  # noqa: E402  (pyrDown `steps` times, then up)


def parse_args(argv=None):
    parser = Parser(description=__doc__)
    parser.add_argument("--test_dir", default=str(ROOT / "data/scenery_large/val"))
    parser.add_argument("--checkpoint", default=str(SHIPPED_MODEL), help="the generator whose layout is kept")
    parser.add_argument("--fills", default="bands,transfer", help="comma-separated: bands, transfer")
    parser.add_argument("--steps", type=int, default=3, help="pyramid steps of the kept low-pass (3: 16 px at 128²)")
    parser.add_argument("--block", type=int, default=16, help="transfer: block side, px")
    parser.add_argument("--stride", type=int, default=12, help="transfer: block spacing, px (overlap = block - stride)")
    parser.add_argument("--results_dir", default="results/probe_exemplar_fills", help="the fills and metrics.csv")
    parser.add_argument("--threads", type=int, default=1)
    return parser.parse_args(argv)


def transferred_detail(layout: torch.Tensor, masked: torch.Tensor, mask: torch.Tensor, steps: int, block: int,
                       stride: int) -> torch.Tensor:
    """One image: layout, masked (1, 3, S, S), mask (1, 1, S, S) -> the high band (1, 3, S, S) of known blocks
    placed where their low-pass colours match `layout`'s (nearest neighbour, squared distance)."""
    side = layout.shape[-1]
    known_low = lowpass(masked, steps)
    known_high = masked - known_low
    inside_known = F.unfold((mask < 0.5).float(), block, stride=1).min(dim=1).values[0] > 0.5  # (L,)
    candidates_low = F.unfold(known_low, block, stride=1)[0][:, inside_known].T  # (N, 3 * block²)
    candidates_high = F.unfold(known_high, block, stride=1)[0][:, inside_known].T
    # Hole blocks on a grid that covers the image: padded (replicate) to block + k * stride, cropped at the end.
    padded = block + stride * -(-(side - block) // stride)
    layout = F.pad(layout, (0, padded - side, 0, padded - side), mode="replicate")
    targets = F.unfold(layout, block, stride=stride)  # (1, 3 * block², T): the fold grid below
    chosen = candidates_high[torch.cdist(targets[0].T, candidates_low).argmin(dim=1)].T[None]  # (1, 3 * block², T)
    ramp = max(1, block - stride)
    window = torch.ones(block)
    window[:ramp] = torch.linspace(0, 1, ramp + 2)[1:-1]
    window[-ramp:] = window[:ramp].flip(0)
    weights = (window[:, None] * window[None, :]).expand(3, block, block).reshape(1, -1, 1)
    total = F.fold(chosen * weights, (padded, padded), block, stride=stride)
    norm = F.fold(weights.expand_as(chosen), (padded, padded), block, stride=stride).clamp_min(1e-6)
    return (total / norm)[..., :side, :side]


def main(args):
    torch.set_num_threads(args.threads)
    generator, config = load_generator(args.checkpoint)
    gan = generator_fill(generator, "cpu", "no")
    steps, size = args.steps, config["image_size"]
    if not 0 < args.stride <= args.block < size:
        raise InputError(f"--stride {args.stride} and --block {args.block}: need 0 < stride <= block < {size}")

    def bands(masked, mask):
        g, exemplar = gan(masked, mask), BASELINES["shiftmap"](masked, mask)
        return keep_known(masked, mask, (lowpass(g, steps) + exemplar - lowpass(exemplar, steps)).clamp(-1, 1))

    def transfer(masked, mask):
        layout = lowpass(gan(masked, mask), steps)
        detail = torch.cat([transferred_detail(layout[i:i + 1], masked[i:i + 1], mask[i:i + 1], steps, args.block,
                                               args.stride) for i in range(len(masked))])
        return keep_known(masked, mask, (layout + detail).clamp(-1, 1))

    for name in args.fills.split(","):
        fill = {"bands": bands, "transfer": transfer}[name]
        start = time.time()
        s = evaluate_folder(fill, args.test_dir, size, config["crop_ratio"], Path(args.results_dir) / name, "cpu",
                            desc=name)
        print(f"{name}: hole PSNR {s['psnr_hole']:.2f}, low-pass {s['psnr_lowpass']:.2f}, sharpness "
              f"{s['sharpness']:.2f}, placement {s['placement']:.2f}, patch SWD {format_swd(s)}, checkerboard "
              f"{s['checkerboard']:.2f} ({time.time() - start:.0f} s)", flush=True)


if __name__ == "__main__":
    sys.exit(run(main, parse_args))

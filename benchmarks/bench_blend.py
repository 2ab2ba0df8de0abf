"""Which blend hides the border between full-resolution photo squares and an upsampled fill?

For every photo of --test_dir at its own resolution N (the shorter side), the gap is filled at the
model's size S (the GAN of --checkpoint at 128, and the harmonic fill at 64 for a larger upsampling
factor), put into the N x N image by utils.fullres.fill_at_resolution with each blend, and compared
with the photo itself:

  band PSNR   PSNR in the blend band (the hole pixels within band_width of the known squares), dB;
  seam step   mean |difference| between the two pixels on either side of the squares' border, divided
              by the same quantity in the photo: 1.0 is as smooth as the photo, more is a visible step.

    python benchmarks/bench_blend.py                     # data/scenery/test, shipped GAN
    python benchmarks/bench_blend.py --test_dir data/scenery_large/test --min_side 600 --max_photos 6
    python benchmarks/bench_blend.py --crops /tmp/border.jpg   # also a picture of the border
    python benchmarks/bench_blend.py --figure docs/fullres_eval_2.jpg   # docs/fullres.md's picture (eval_2)
"""
import argparse
import sys
import time
from pathlib import Path

import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from data.datasets import eval_transform  # noqa: E402
from data.images import list_images, load_image  # noqa: E402
from utils.images import to_float, to_uint8  # noqa: E402
from data.masks import distance_to_known, known_squares  # noqa: E402
from models.baselines import BASELINES  # noqa: E402
from utils.loading import SHIPPED_MODEL, generator_fill, load_generator  # noqa: E402
from utils.evaluation import quantize  # noqa: E402
from utils.files import atomic_write  # noqa: E402
from utils.fullres import BLENDS, band_width, fill_at_resolution, model_input  # noqa: E402


def seam_step(image: torch.Tensor, known: torch.Tensor) -> float:
    """Mean |a - b| over the 4-neighbour pairs (a, b) with one pixel known and the other not."""
    vertical = (known[1:, :] != known[:-1, :]).float()
    horizontal = (known[:, 1:] != known[:, :-1]).float()
    dv = (image[:, 1:, :] - image[:, :-1, :]).abs().mean(0)
    dh = (image[:, :, 1:] - image[:, :, :-1]).abs().mean(0)
    return float(((dv * vertical).sum() + (dh * horizontal).sum()) / (vertical.sum() + horizontal.sum()))


def band_psnr(output: torch.Tensor, truth: torch.Tensor, band: torch.Tensor) -> float:
    mse = (((output - truth) / 2) ** 2 * band).sum() / (band.sum() * 3)
    return float(10 * torch.log10(1 / mse.clamp_min(1e-10)))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--test_dir", default=str(Path(__file__).resolve().parents[1] / "data/scenery/test"))
    parser.add_argument("--checkpoint", default=SHIPPED_MODEL)
    parser.add_argument("--crop_ratio", type=float, default=0.4)
    parser.add_argument("--min_side", type=int, default=0, help="only photos whose shorter side is at least this")
    parser.add_argument("--max_photos", type=int, default=None, help="at most this many photos (sorted by name)")
    parser.add_argument("--figure", help="write docs/fullres.md's JPEG: eval_2 of --image1/--image2 at the model's size "
                                         "and at full resolution, and the border without and with the blend")
    parser.add_argument("--image1", help="with --figure: the first photo (default: data/scenery/test's yellow flower)")
    parser.add_argument("--image2", help="with --figure: the second photo (default: data/scenery/test's mountains)")
    parser.add_argument("--crops", help="write a JPEG: the border region of the first photo, one column per blend")
    args = parser.parse_args(argv)
    if (args.image1 or args.image2) and not args.figure:
        parser.error("--image1 and --image2 are the --figure's photos: add --figure FILE, or drop them")
    test = Path(__file__).resolve().parents[1] / "data/scenery/test"
    args.image1 = args.image1 or str(test / "mate_yellow_flower.jpg")
    args.image2 = args.image2 or str(test / "lomiri_picos_mountains.jpg")
    return args


def main(args):
    torch.set_num_threads(1)
    generator, config = load_generator(args.checkpoint)
    methods = [(f"GAN {config['image_size']}px", generator_fill(generator, "cpu", "no"), config["image_size"]),
               ("harmonic 64px", BASELINES["harmonic"], 64)]
    r = args.crop_ratio
    if args.figure:
        return figure(methods[0][1], methods[0][2], args.image1, args.image2, r, args.figure)
    results, crops = {}, []
    photos = [(path, load_image(path)) for path in list_images(args.test_dir)]
    photos = [(path, photo) for path, photo in photos if min(photo.size) >= args.min_side][:args.max_photos]
    for path, photo in photos:
        size = min(photo.size)
        truth = to_float(eval_transform(photo, size))[None]
        known = torch.from_numpy(distance_to_known(size, r) == 0)
        for label, fill, model_size in methods:
            width = band_width(size, model_size)
            distance = torch.from_numpy(distance_to_known(size, r))
            band = ((distance > 0) & (distance <= width)).float()
            masked, mask = model_input(truth, model_size, r, quantize)
            reference = seam_step(truth[0], known)
            for blend in BLENDS:
                start = time.perf_counter()
                out = quantize(fill_at_resolution(fill, masked, mask, truth, r, blend=blend))[0]
                seconds = time.perf_counter() - start
                row = results.setdefault((label, blend), [])
                row.append((band_psnr(out, truth[0], band), seam_step(out, known) / reference, seconds))
                if not crops or (len(crops) < len(BLENDS) + 1 and label.startswith("GAN")):
                    if not crops:
                        crops.append(("photo", _crop(truth[0], size, r)))
                    crops.append((blend, _crop(out, size, r)))
    print(f"{len(photos)} photos of {args.test_dir}, each at its shorter side; crop ratio {r}; {args.checkpoint}")
    print("| fill | blend | band PSNR (dB) | seam step (x photo) | s / image |")
    print("|---|---|---|---|---|")
    for (label, blend), rows in results.items():
        psnr, step, seconds = (sum(v) / len(v) for v in zip(*rows))
        print(f"| {label} | {blend} | {psnr:.2f} | {step:.2f} | {seconds:.2f} |")
    if args.crops:
        strip = torch.cat([c for _, c in crops], dim=-1)
        array = to_uint8(strip).permute(1, 2, 0).numpy()
        path = atomic_write(args.crops, lambda tmp: Image.fromarray(array).save(tmp, format="JPEG", quality=92))
        print(f"wrote {path}: the border of the first photo's bottom-left square, columns "
              + " | ".join(name for name, _ in crops))


def figure(fill, model_size: int, image1, image2, crop_ratio: float, path) -> None:
    """model size | full resolution | border without blend | border with the default blend, labelled."""
    from PIL import ImageDraw

    from data.masks import compose_two
    from utils.fullres import DEFAULT_BLEND
    photos = [load_image(image1), load_image(image2)]
    size = min(min(p.size) for p in photos)
    small, small_mask = compose_two(*(to_float(eval_transform(p, model_size)) for p in photos), crop_ratio)
    known, _ = compose_two(*(to_float(eval_transform(p, size)) for p in photos), crop_ratio)
    tiles = [(f"model size ({model_size}x{model_size})", _enlarge(fill(small[None], small_mask[None])[0], size))]
    for blend, label in ((DEFAULT_BLEND, f"full resolution ({size}x{size})"), ("none", None)):
        out = quantize(fill_at_resolution(fill, small[None], small_mask[None], known[None], crop_ratio, blend))[0]
        if label:
            tiles.append((label, out))
            blended = out
        else:
            plain = out
    tiles += [("border, plain paste", _enlarge(_crop(plain, size, crop_ratio), size)),
              (f"border, {DEFAULT_BLEND} blend", _enlarge(_crop(blended, size, crop_ratio), size))]
    gap = torch.ones(3, size, 6)
    strip = torch.cat([t for _, tile in tiles for t in (tile, gap)][:-1], dim=-1)
    canvas = Image.fromarray(to_uint8(strip).permute(1, 2, 0).numpy())
    draw = ImageDraw.Draw(canvas)
    for i, (label, _) in enumerate(tiles):
        x = i * (size + 6) + 4
        draw.rectangle((x - 2, 2, x + 6 * len(label) + 2, 14), fill=(0, 0, 0))
        draw.text((x, 3), label, fill=(255, 255, 255))
    path = atomic_write(path, lambda tmp: canvas.save(tmp, format="JPEG", quality=88))
    print(f"wrote {path} ({canvas.size[0]}x{canvas.size[1]})")


def _enlarge(image: torch.Tensor, size: int) -> torch.Tensor:
    return torch.nn.functional.interpolate(image[None].float(), size=(size, size), mode="nearest")[0]


def _crop(image: torch.Tensor, size: int, crop_ratio: float) -> torch.Tensor:
    """The top-right corner of the bottom-left known square, with the hole around it, enlarged 3x."""
    top, left, side = known_squares(size, crop_ratio)[0]
    half = max(8, size // 12)
    y, x = top, left + side
    region = image[:, max(0, y - half):y + half, max(0, x - half):x + half]
    return torch.nn.functional.interpolate(region[None], scale_factor=3, mode="nearest")[0]


if __name__ == "__main__":
    from utils.cli import run
    sys.exit(run(main, parse_args))

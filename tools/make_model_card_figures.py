"""The model card's pictures: fills of test photos beside the floors and the truth, and eval_2 pairs.

    python tools/make_model_card_figures.py --checkpoint checkpoints/gan_scenery_128.pth \\
        --test_dir data/scenery_large/test --out_dir docs
    python tools/make_model_card_figures.py --checkpoint NEW.pth --previous checkpoints/gan_scenery_128.pth

Writes <out_dir>/gan_test_examples.jpg (one row per photo: input | GAN | [previous GAN |] harmonic |
shift-map | truth: the smoothest and the exemplar-based training-free fills beside the model),
<out_dir>/gan_eval_2_example.jpg (one row per pair: photo 1 | photo 2 | input | GAN | [previous GAN |]
harmonic | shift-map) and
<out_dir>/CREDITS.md naming every photo used (package, path, author, licence) from the test folder's
CREDITS.csv (tools/build_scenery_set.py writes it one folder up). Photos are taken every
len(photos) / --rows in sorted order, so the choice does not depend on the scores.
"""
import csv
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from data.datasets import ImageFolderDataset, load_eval_image  # noqa: E402
from data.images import list_images  # noqa: E402
from data.masks import apply_mask, compose_two  # noqa: E402
from models.baselines import BASELINES, harmonic_baseline  # noqa: E402
from utils.loading import generator_fill, load_generator  # noqa: E402
from utils.cli import Parser, run  # noqa: E402
from utils.errors import InputError  # noqa: E402
from utils.images import save_grid  # noqa: E402


def parse_args(argv=None):
    parser = Parser(description=__doc__)
    parser.add_argument("--checkpoint", default=str(ROOT / "checkpoints" / "gan_scenery_128.pth"))
    parser.add_argument("--test_dir", default=str(ROOT / "data" / "scenery_large" / "test"))
    parser.add_argument("--previous", default=None, help="a second model shown beside the first (e.g. the one it replaces)")
    parser.add_argument("--out_dir", default=str(ROOT / "docs"))
    parser.add_argument("--rows", type=int, default=8, help="test photos in the first figure")
    parser.add_argument("--pairs", type=int, default=3, help="eval_2 pairs in the second figure")
    return parser.parse_args(argv)


def main(args):
    if args.rows < 1 or args.pairs < 0:
        raise InputError(f"--rows must be >= 1 and --pairs >= 0, got {args.rows} and {args.pairs}")
    torch.manual_seed(0)
    generator, config = load_generator(args.checkpoint)
    size, crop_ratio = config["image_size"], config["crop_ratio"]
    gan = generator_fill(generator, "cpu", "no")
    models = [gan]
    if args.previous:
        models.append(generator_fill(load_generator(args.previous)[0], "cpu", "no"))
    shiftmap = BASELINES["shiftmap"]

    def fills(masked, mask):  # the columns between the input and the truth
        return [fill(masked, mask) for fill in models] + [harmonic_baseline(masked, mask), shiftmap(masked, mask)]
    out_dir = Path(args.out_dir)
    dataset = ImageFolderDataset(args.test_dir, size, crop_ratio, train=False)
    step = max(1, len(dataset) // args.rows)
    picks = list(range(0, len(dataset), step))[: args.rows]
    image = torch.stack([dataset[i]["image"] for i in picks])
    mask = torch.stack([dataset[i]["mask"] for i in picks])
    masked = apply_mask(image, mask)
    with torch.no_grad():
        columns = [masked, *fills(masked, mask), image]
    used = [dataset.files[i] for i in picks]
    print(f"wrote {save_grid(columns, out_dir / 'gan_test_examples.jpg', max_rows=len(picks))}")

    # eval_2: pairs of photos far apart in the sorted list (different sources, usually).
    photos = list_images(args.test_dir)
    half = len(photos) // 2
    pairs = [(photos[(k * 7) % len(photos)], photos[(k * 7 + half) % len(photos)]) for k in range(args.pairs)]
    rows = []
    for first_path, second_path in pairs:
        first, second = load_eval_image(first_path, size), load_eval_image(second_path, size)
        combined, pair_mask = compose_two(first, second, crop_ratio)
        with torch.no_grad():
            rows.append([first, second, combined, *(f[0] for f in fills(combined[None], pair_mask[None]))])
        used += [first_path, second_path]
    grid = [torch.stack([r[c] for r in rows]) for c in range(len(rows[0]))]
    print(f"wrote {save_grid(grid, out_dir / 'gan_eval_2_example.jpg', max_rows=len(rows))}")

    # Credits of every photo shown.
    credits_csv = Path(args.test_dir).parent / "CREDITS.csv"
    credits = {}
    if credits_csv.is_file():
        with open(credits_csv, newline="") as f:
            credits = {row["file"]: row for row in csv.DictReader(f)}
    lines = ["# Credits of the photos in gan_test_examples.jpg and gan_eval_2_example.jpg", "",
             "Resized to 128 px and shown with the model's fills; from `data/scenery_large` "
             "(`tools/build_scenery_set.py`).", "",
             "| file | package | path in the package | author | licence |", "|---|---|---|---|---|"]
    for path in dict.fromkeys(used):
        key = f"{Path(args.test_dir).name}/{Path(path).name}"
        row = credits.get(key, {})
        lines.append(f"| {Path(path).name} | {row.get('package', '?')} {row.get('version', '')} | "
                     f"{row.get('path', '?')} | {row.get('author', '?')} | {row.get('licence', '?')} |")
    (out_dir / "CREDITS.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {out_dir / 'CREDITS.md'}")


if __name__ == "__main__":
    sys.exit(run(main, parse_args))

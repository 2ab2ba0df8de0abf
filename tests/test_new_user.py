"""Issue 10: the first hour of a new user. One test per numbered point of the issue, then its "done when".

 1 no --mode: eval_2 with two photos, else a usage (nothing trains)   test_1_no_mode_means_eval_2_never_training
 2 full resolution; --image_size / --crop_ratio act or are refused    test_2_full_resolution_and_flags_that_act
 3 from another folder                                                 test_3_works_from_another_folder
 4 --output format, folder, impossible path                           test_4_output_format_folder_and_bad_path
 5 files honour the umask                                             test_5_written_files_honour_the_umask
 6 a folder where a file is expected                                  test_6_a_folder_is_named_as_a_folder
 7 runs that do not collide; resume keeps its recipe; eval_2 folders  test_7_runs_do_not_collide
 8 warnings on one line                                               test_8_warnings_are_one_line
 9 small temp files (conftest.small_temp_files), tiny VGG stand-in    test_9_tests_keep_temp_files_small
10 README/docs time figures and runnable diffusion commands           test_10_readme_times_and_commands
"""
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import diffusion
import main as gan
from data.datasets import eval_transform
from data.masks import known_squares
from utils.loading import build_generator, export_generator
from tests.helpers import smooth_image, write_images
from utils.checkpoint import save_checkpoint
from utils.cli import run
from utils.evaluation import pair_name, write_csv_atomic
from utils.images import save_png

ROOT = Path(__file__).resolve().parents[1]
TINY_TRAIN = ["--image_size", "64", "--ngf", "8", "--ndf", "8", "--batch_size", "2", "--lambda_perc", "0",
              "--log_interval", "1", "--epochs", "1"]


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """A 64 px generator export (untrained: with the harmonic start it returns the harmonic fill)."""
    config = {"image_size": 64, "ngf": 8, "crop_ratio": 0.4, "norm": "group", "upsampling": "resize",
              "res_blocks": 0, "harmonic_start": True}
    return export_generator(build_generator(config), config, tmp_path_factory.mktemp("model") / "gen.pth")


def photo(path, width, height, seed=0):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    smooth_image(seed, width, height).save(path, quality=90)
    return path


def call(script, argv, capsys):
    code = run(script.main, script.parse_args, [str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def pixels(path):
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def known_pixels_match(output, photos, crop_ratio=0.4):
    """The output's two known squares are the photos' own, resized and cropped as eval does."""
    size = output.shape[0]
    for (top, left, side), path in zip(known_squares(size, crop_ratio), photos):
        with Image.open(path) as im:
            reference = eval_transform(im.convert("RGB"), size).permute(1, 2, 0).numpy()
        square = (slice(top, top + side), slice(left, left + side))
        if not np.array_equal(output[square], reference[square]):
            return False
    return True


def test_1_no_mode_means_eval_2_never_training(model, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # relative defaults (checkpoints/, results/) land here
    a, b = photo(tmp_path / "a.jpg", 90, 70), photo(tmp_path / "b.jpg", 80, 100, seed=1)
    code, out, _ = call(gan, ["--image1", a, "--image2", b, "--checkpoint_path", model], capsys)
    assert code == 0 and f"{pair_name(a, b)}_eval_2" in out
    assert (tmp_path / "results" / f"{pair_name(a, b)}_eval_2" / "generated_combined.png").is_file()
    assert not (tmp_path / "checkpoints").exists()
    for script in (gan, diffusion):  # neither --mode nor photos: a short usage, exit status 2
        with pytest.raises(SystemExit) as exit_info:
            script.parse_args([])
        err = capsys.readouterr().err
        assert exit_info.value.code == 2 and all(f"--mode {m}" in err for m in ("train", "eval", "eval_2"))
        assert len(err.splitlines()) <= 6


def test_2_full_resolution_and_flags_that_act(model, data, tmp_path, capsys):
    # Done when: 1600x900 + 1200x1600 -> 900x900 by default, 512x512 with --output_size 512; the known squares
    # are the photos' own at that resolution (exactly: the band is blended inside the hole only).
    a, b = photo(tmp_path / "wide.jpg", 1600, 900), photo(tmp_path / "tall.jpg", 1200, 1600, seed=1)
    code, out, _ = call(gan, ["--mode", "eval_2", "--image1", a, "--image2", b, "--checkpoint_path", model,
                              "--results_dir", tmp_path / "r"], capsys)
    result = tmp_path / "r" / f"{pair_name(a, b)}_eval_2" / "generated_combined.png"
    assert code == 0 and f"{result} (900x900" in out
    filled = pixels(result)
    assert filled.shape == (900, 900, 3) and known_pixels_match(filled, (a, b))
    code, out, _ = call(gan, ["--image1", a, "--image2", b, "--checkpoint_path", model, "--output_size", "512",
                              "--output", tmp_path / "512.png"], capsys)
    assert code == 0 and pixels(tmp_path / "512.png").shape == (512, 512, 3)
    assert known_pixels_match(pixels(tmp_path / "512.png"), (a, b))
    code, out, _ = call(gan, ["--image1", a, "--image2", b, "--checkpoint_path", model, "--output_size", "model",
                              "--output", tmp_path / "64.png"], capsys)
    assert code == 0 and pixels(tmp_path / "64.png").shape == (64, 64, 3)
    # A set output size writes a folder of its own: the fill at the photos' size is not replaced.
    code, out, _ = call(gan, ["--image1", a, "--image2", b, "--checkpoint_path", model, "--output_size", "model",
                              "--results_dir", tmp_path / "r"], capsys)
    at_model_size = tmp_path / "r" / f"{pair_name(a, b)}_eval_2_64px" / "generated_combined.png"
    assert code == 0 and pixels(at_model_size).shape == (64, 64, 3) and pixels(result).shape == (900, 900, 3)

    # --image_size with a model: an error naming the model's size and --output_size.
    code, _, err = call(gan, ["--image1", a, "--image2", b, "--checkpoint_path", model, "--image_size", "256"], capsys)
    assert code == 2 and err.startswith("error: --image_size 256") and "64x64" in err and "--output_size" in err
    # --crop_ratio is the mask the network gets: used, with a warning that the model was trained with 0.4.
    code, _, err = call(gan, ["--image1", a, "--image2", b, "--checkpoint_path", model, "--crop_ratio", "0.2",
                              "--output_size", "200", "--output", tmp_path / "r02.png"], capsys)
    assert code == 0 and err.strip() == (f"warning: --crop_ratio 0.2 differs from the 0.4 {model} was trained with: "
                                         "the fill may be worse")
    filled = pixels(tmp_path / "r02.png")
    assert known_pixels_match(filled, (a, b), crop_ratio=0.2) and not known_pixels_match(filled, (a, b), 0.4)
    assert call(gan, ["--image1", a, "--image2", b, "--crop_ratio", "0.7"], capsys)[0] == 2
    # Flags that would do nothing in a mode are refused.
    code, _, err = call(gan, ["--image1", a, "--image2", b, "--checkpoint_path", model, "--epochs", "3"], capsys)
    assert code == 2 and err.strip() == "error: --epochs does nothing in --mode eval_2: drop it"
    assert call(gan, ["--mode", "train", "--output_size", "256"], capsys)[0] == 2
    assert call(gan, ["--image1", a, "--image2", b, "--output", tmp_path / "o.png", "--results_dir", tmp_path],
                capsys)[0] == 2
    assert call(gan, ["--image1", a, "--image2", b, "--baseline", "mean", "--checkpoint_path", model], capsys)[0] == 2

    # --mode eval --output_size N: every photo scored at N x N, its known squares its own.
    code, out, _ = call(gan, ["--mode", "eval", "--checkpoint_path", model, "--test_dir", data / "test",
                              "--output_size", "96", "--results_dir", tmp_path / "eval"], capsys)
    assert code == 0 and "at 96x96 (filled at 64x64, upsampled)" in out
    original, generated = (pixels(tmp_path / "eval" / "img_100" / f"{n}.png") for n in ("original", "generated"))
    assert generated.shape == (96, 96, 3)
    for top, left, side in known_squares(96, 0.4):
        square = (slice(top, top + side), slice(left, left + side))
        assert np.array_equal(generated[square], original[square])


def test_3_works_from_another_folder(tmp_path):
    # Done when: `python main.py --image1 A --image2 B` from another folder, absolute paths, the shipped model.
    a, b = photo(tmp_path / "a.jpg", 160, 120), photo(tmp_path / "b.jpg", 130, 150, seed=1)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = subprocess.run([sys.executable, str(ROOT / "main.py"), "--image1", str(a), "--image2", str(b)],
                          cwd=elsewhere, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr
    result = elsewhere / "results" / f"{pair_name(a, b)}_eval_2" / "generated_combined.png"
    assert f"wrote {Path('results') / result.parent.name / 'generated_combined.png'} (120x120;" in done.stdout
    assert pixels(result).shape == (120, 120, 3) and known_pixels_match(pixels(result), (a, b))
    assert sorted(p.name for p in elsewhere.iterdir()) == ["results"]  # no checkpoints/, nothing else


def test_4_output_format_folder_and_bad_path(model, tmp_path, capsys):
    a, b = photo(tmp_path / "a.jpg", 90, 70), photo(tmp_path / "b.jpg", 80, 100, seed=1)
    common = ["--image1", a, "--image2", b, "--checkpoint_path", model]
    magic = {"x.jpg": b"\xff\xd8\xff", "x.JPEG": b"\xff\xd8\xff", "x.webp": b"RIFF", "x.png": b"\x89PNG"}
    for name, start in magic.items():
        assert call(gan, common + ["--output", tmp_path / name], capsys)[0] == 0
        assert (tmp_path / name).read_bytes().startswith(start), name
    with Image.open(tmp_path / "x.jpg") as im:
        assert im.format == "JPEG" and im.size == (70, 70)
    folder = tmp_path / "out"
    folder.mkdir()
    code, out, _ = call(gan, common + ["--output", folder], capsys)
    assert code == 0 and (folder / f"{pair_name(a, b)}.png").is_file() and str(folder / pair_name(a, b)) in out
    for output, message in ((tmp_path / "x.tif", "end the name with .png, .jpg, .jpeg or .webp"),
                            (tmp_path / "a.jpg" / "x.png", f"{tmp_path / 'a.jpg'} is a file, not a folder")):
        code, _, err = call(gan, common + ["--output", output], capsys)
        assert code == 2 and err.startswith("error: ") and message in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "x.tif").exists()


def test_5_written_files_honour_the_umask(model, tmp_path, capsys):
    old = os.umask(0o022)
    try:
        a, b = photo(tmp_path / "a.jpg", 90, 70), photo(tmp_path / "b.jpg", 80, 100, seed=1)
        assert call(gan, ["--image1", a, "--image2", b, "--checkpoint_path", model, "--results_dir", tmp_path / "r"],
                    capsys)[0] == 0
        written = list((tmp_path / "r").rglob("*.png"))
        written += [save_checkpoint({"kind": "gan"}, tmp_path / "c.pth"),
                    save_png(torch.zeros(3, 4, 4), tmp_path / "i.png"),
                    write_csv_atomic([{"a": 1}], ["a"], tmp_path / "m.csv")]
        assert len(written) == 7 and {oct(p.stat().st_mode & 0o777) for p in written} == {"0o644"}
        os.umask(0o077)  # the umask, not a fixed mode
        assert save_png(torch.zeros(3, 4, 4), tmp_path / "private.png").stat().st_mode & 0o777 == 0o600
    finally:
        os.umask(old)


def test_6_a_folder_is_named_as_a_folder(model, data, tmp_path, capsys):
    folder = tmp_path / "some_folder"
    folder.mkdir()
    image = data / "test" / "img_100.png"
    cases = [(["--image1", str(folder) + "/", "--image2", image, "--checkpoint_path", model],
              "is a folder, not an image"),
             (["--mode", "eval", "--checkpoint_path", folder], "is a folder, not a checkpoint"),
             (["--mode", "eval", "--checkpoint_path", model, "--test_dir", image], "is a file, not a folder")]
    for argv, message in cases:
        code, _, err = call(gan, argv, capsys)
        assert code == 2 and message in err and len(err.splitlines()) == 1, err


def test_7_runs_do_not_collide(model, data, tmp_path, capsys, monkeypatch):
    def train(*extra):
        return call(gan, ["--mode", "train", "--train_dir", data / "train", "--test_dir", data / "test",
                          "--checkpoint_dir", tmp_path / "ckpt", "--results_dir", tmp_path / "res", *TINY_TRAIN,
                          *extra], capsys)
    assert train()[0] == 0
    first = tmp_path / "ckpt" / "checkpoint_epoch_1.pth"
    before = first.read_bytes()
    code, _, err = train()  # a second run into the same folders
    assert code == 2 and "another run's files" in err and f"--checkpoint_path {first}" in err and "--overwrite" in err
    assert first.read_bytes() == before
    save_checkpoint({"kind": "gan"}, tmp_path / "ckpt" / "checkpoint_epoch_9.pth")  # a later epoch of that run
    code, out, _ = train("--overwrite")
    assert code == 0 and "--overwrite: deleted" in out and not (tmp_path / "ckpt" / "checkpoint_epoch_9.pth").exists()

    # Resume: the recipe comes from the checkpoint, is printed, and a conflicting recipe flag is refused.
    code, _, err = train("--checkpoint_path", first, "--epochs", "2", "--ngf", "16")
    assert code == 2 and "--ngf 16 (the checkpoint has 8)" in err
    code, out, _ = train("--checkpoint_path", first, "--epochs", "2")
    assert code == 0 and f"resuming {first} (epoch 1) with its recipe: --image_size 64 --crop_ratio 0.4 --ngf 8" in out
    # Resumed without its folders, the run goes on where it was, not in the default checkpoints/ and results/.
    monkeypatch.chdir(tmp_path)
    code, out, _ = call(gan, ["--mode", "train", "--checkpoint_path", tmp_path / "ckpt" / "checkpoint_epoch_2.pth",
                              "--epochs", "3"], capsys)
    assert code == 0 and f"--checkpoint_dir {tmp_path / 'ckpt'} --results_dir {tmp_path / 'res'}" in out
    assert (tmp_path / "ckpt" / "checkpoint_epoch_3.pth").is_file() and (tmp_path / "res" / "train" / "samples" /
                                                                          "epoch_0003.png").is_file()
    assert not (tmp_path / "checkpoints").exists() and not (tmp_path / "results").exists()
    shutil.rmtree(tmp_path / "ckpt")  # 8 MB each: keep the temp folder small

    # Two photo.jpg from different folders: two eval_2 folders.
    one, two, other = photo(tmp_path / "x" / "photo.jpg", 80, 70), photo(tmp_path / "y" / "photo.jpg", 70, 90, 1), \
        photo(tmp_path / "z.jpg", 90, 80, 2)
    for first_photo in (one, two):
        assert call(gan, ["--image1", first_photo, "--image2", other, "--checkpoint_path", model, "--results_dir",
                          tmp_path / "r"], capsys)[0] == 0
    assert len(list((tmp_path / "r").glob("photo_z_*_eval_2"))) == 2


def test_8_warnings_are_one_line(tmp_path):
    folder = tmp_path / "photos"
    write_images(folder, 2, size=(70, 90))
    (folder / "broken.png").write_bytes(b"not a png")
    done = subprocess.run([sys.executable, str(ROOT / "main.py"), "--mode", "eval", "--baseline", "mean",
                           "--image_size", "64", "--test_dir", str(folder), "--results_dir", str(tmp_path / "r")],
                          cwd=tmp_path, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr
    warning_lines = [line for line in done.stderr.splitlines() if "broken.png" in line or "Warning" in line]
    assert len(warning_lines) == 1 and warning_lines[0].startswith("warning: skipping unreadable image: ")
    assert "warnings.warn" not in done.stderr and "datasets.py" not in done.stderr
    assert f"2 images at 64x64 -> {tmp_path / 'r' / 'metrics.csv'}" in done.stdout  # where the outputs went


def test_9_tests_keep_temp_files_small(tmp_path):
    from torchvision.models.vgg import cfgs, make_layers

    from tests import conftest
    from tests.helpers import tiny_vgg19
    # Enforced on every test that uses tmp_path (conftest.small_temp_files), which also empties it when it passes.
    assert conftest.MAX_TEMP_MB <= 40
    with torch.device("meta"):
        real = make_layers(cfgs["E"])  # VGG19's features, without allocating them
    stand_in = tiny_vgg19().features
    assert [type(m) for m in stand_in] == [type(m) for m in real]  # same layer indices as VGGPerceptualLoss uses
    torch.save(tiny_vgg19().state_dict(), tmp_path / "vgg.pth")
    assert (tmp_path / "vgg.pth").stat().st_size < 2 ** 20


TIME = re.compile(r"\b\d+(?:[.,]\d+)?(?:[–-]\d+(?:\.\d+)?)?\s?(?:ms|s|min|minutes?|seconds?|hours?)\b(?!\w)")
HARDWARE = re.compile(r"core|CPU|GPU|EPYC|H100|H200|VM\b")


def test_10_readme_times_and_commands():
    # Every time figure of the README and docs/ names the hardware and the command, in a table row (hardware
    # column) or its paragraph; the GAN recipe's pages (main.py, model card, research log, data) are checked by their owners.
    theirs = ("gan.md", "model_card.md", "realistic_fills.md", "data.md")
    checked = [(ROOT / "README.md").read_text()] + [p.read_text() for p in sorted((ROOT / "docs").glob("*.md"))
                                                     if p.name not in theirs]
    for section in checked:
        blocks = re.split(r"\n\s*\n", re.sub(r"```.*?```", "CODE", section, flags=re.S))
        for i, block in enumerate(blocks):
            if not TIME.search(block) or block.lstrip().startswith("|"):  # tables carry their hardware column
                continue
            context = " ".join(blocks[max(0, i - 1):i + 2])
            assert HARDWARE.search(block), f"time figure without hardware: {block[:200]!r}"
            assert "`" in block or "CODE" in context, f"time figure without the command: {block[:200]!r}"
    # The diffusion commands run as written: a short run first; every checkpoint a command reads was written by
    # a training command before it.
    commands = re.findall(r"^(?:OMP_NUM_THREADS=1 )?python (?:diffusion|benchmarks/compare)\.py .*?(?<!\\)$",
                          re.sub(r"\\\n\s*", " ", (ROOT / "docs" / "diffusion.md").read_text()), flags=re.M)
    written = set()
    assert "--mode train" in commands[0] and int(re.search(r"--epochs (\d+)", commands[0]).group(1)) <= 5
    for command in commands:
        for read in re.findall(r"--(?:checkpoint_path|diffusion_checkpoint) (\S+)", command):
            assert read in written, f"{read} is read before a command writes it: {command}"
        if "--mode train" in command:
            folder = re.search(r"--checkpoint_dir (\S+)", command)
            epochs = int(re.search(r"--epochs (\d+)", command).group(1))
            written.add(f"{folder.group(1) if folder else 'checkpoints/diffusion'}/checkpoint_epoch_{epochs}.pth")

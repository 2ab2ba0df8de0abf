"""The GPU-run tools: tools/pack_device_run.py (what travels) and tools/select_checkpoint.py (the selection rule)."""
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

import main as gan
from tests.helpers import tiny_gan_train_argv, write_images
from tools import pack_device_run, select_checkpoint
from utils.cli import run
from utils.errors import InputError

ROOT = Path(__file__).resolve().parents[1]
# sitecustomize for a subprocess: the named top-level packages import only from the pack's site folder.
BLOCKER = """import importlib.machinery, sys
NAMES, SITE = {names!r}, {site!r}
class DeviceImage:
    def find_spec(self, name, path=None, target=None):
        if name in NAMES:
            spec = importlib.machinery.PathFinder.find_spec(name, [SITE])
            if spec is None:
                raise ModuleNotFoundError(name + " is not on the device")
            return spec
        return None
sys.meta_path.insert(0, DeviceImage())
"""


def rows(*pairs) -> list:
    return [{"epoch": str(2 * (i + 1)), "step": str(10 * (i + 1)), "swd": str(swd), "psnr_lowpass": str(lowpass),
             "swd_levels": "1/2/3/4", "psnr_hole": "15", "placement": "0.3", "sharpness": "0.6"}
            for i, (swd, lowpass) in enumerate(pairs)]


def test_the_rule_takes_the_lowest_swd_above_the_line():
    table = rows((30.0, 17.2), (20.0, 16.7), (25.0, 16.9), (22.0, 16.81))
    assert select_checkpoint.pick_row(table, 16.81)["epoch"] == "8"  # 20.0 is lower but under the line
    assert select_checkpoint.pick_row(table, 16.0)["epoch"] == "4"
    with pytest.raises(InputError, match=r"none keeps the layout \(the best val low-pass hole PSNR is 17.20"):
        select_checkpoint.pick_row(table, 17.5)


def test_the_rule_bounds_the_chroma_and_stripe_shares():
    table = rows((20.0, 17.0), (22.0, 17.0), (25.0, 17.0), (18.0, 16.0))
    for row, chroma, stripes in zip(table, (0.30, 0.09, 0.10, 0.05), (0.30, 0.90, 0.35, 0.30)):
        row["chroma"], row["stripes"] = str(chroma), str(stripes)
    assert select_checkpoint.pick_row(table, 16.81)["epoch"] == "2"  # no bounds: the lowest SWD above the line
    assert select_checkpoint.pick_row(table, 16.81, max_chroma=0.11)["epoch"] == "4"  # epoch 2 sparkles
    assert select_checkpoint.pick_row(table, 16.81, max_chroma=0.11, max_stripes=0.40)["epoch"] == "6"  # 4 is plaid
    with pytest.raises(InputError, match="none keeps its stripes within the stripes share bound 0.20 "
                                         r"\(the least is 0.30\)"):
        select_checkpoint.pick_row(table, 16.81, max_stripes=0.2)
    old = rows((20.0, 17.0))  # a run scored before the shares were columns cannot pass a bound on them
    with pytest.raises(InputError, match="the rows have no chroma column"):
        select_checkpoint.pick_row(old, 16.81, max_chroma=0.11)


def test_the_rule_can_ask_for_a_placement_margin():
    table = rows((20.0, 17.0), (22.0, 17.1), (25.0, 17.2))
    for row, placement in zip(table, (0.36, 0.42, 0.41)):
        row["placement"] = str(placement)
    assert select_checkpoint.pick_row(table, 16.81)["epoch"] == "2"  # no bound: the lowest SWD
    assert select_checkpoint.pick_row(table, 16.81, min_placement=0.41)["epoch"] == "4"  # 0.41 itself passes too
    assert select_checkpoint.pick_row(table, 17.15, min_placement=0.41)["epoch"] == "6"  # the line and the bound
    with pytest.raises(InputError, match=r"none keeps its detail placement at or above the placement bound 0.45 "
                                         r"\(the most is 0.42\)"):
        select_checkpoint.pick_row(table, 16.81, min_placement=0.45)


def test_a_val_metrics_file_without_the_rule_s_columns_or_numbers_is_refused(tmp_path, capsys):
    columns = ",".join(select_checkpoint.VAL_COLUMNS)
    cases = {"old.csv": ("epoch,swd,psnr_lowpass\n1,20,17\n", "no rows with step, swd_levels"),
             "text.csv": (f"{columns}\n4,10,abc,1/2,17,14,0.4,0.8\n", "line 2: swd is 'abc', not a number")}
    for name, (text, message) in cases.items():
        (tmp_path / name).write_text(text)
        assert run(select_checkpoint.main, select_checkpoint.parse_args,
                   ["--val_metrics", str(tmp_path / name), "--min_lowpass", "1"]) == 2
        assert message in capsys.readouterr().err


def test_checkpoint_config_is_read_without_the_weights(tmp_path):
    from utils.checkpoint import checkpoint_config, save_checkpoint
    weights = {"w": torch.arange(6.0)}
    save_checkpoint({"kind": "gan", "config": {"image_size": 64, "crop_ratio": 0.4}, "generator": weights},
                    tmp_path / "c.pth")
    assert checkpoint_config(tmp_path / "c.pth", kinds=("gan",)) == {"image_size": 64, "crop_ratio": 0.4}
    with pytest.raises(InputError, match="is not a diffusion checkpoint"):
        checkpoint_config(tmp_path / "c.pth", kinds=("diffusion",))


def test_select_and_export_a_trained_run(data, tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    gan.main(gan.parse_args(tiny_gan_train_argv(data, out, "--epochs", "2", "--save_every", "1",
                                                "--val_dir", str(data / "test"))))
    metrics = out / "train" / "val_metrics.csv"
    with open(metrics, newline="") as f:
        scored = list(csv.DictReader(f))
    assert [row["epoch"] for row in scored] == ["1", "2"]
    capsys.readouterr()
    export = tmp_path / "pick.pth"
    assert run(select_checkpoint.main, select_checkpoint.parse_args,
               ["--val_metrics", str(metrics), "--harmonic_dir", str(data / "test"), "--margin", "-100",
                "--chroma_margin", "inf", "--stripe_margin", "inf", "--export", str(export)]) == 0
    expected = min(scored, key=lambda row: float(row["swd"]))["epoch"]
    out = capsys.readouterr().out
    assert f"pick: epoch {expected} " in out and "the truth on" in out and "chroma share" in out
    generator, config = gan.load_generator(export)
    assert config["image_size"] == 64 and sum(p.numel() for p in generator.parameters()) > 0
    # --harmonic_cache: scored once and written; then read, not scored again (the lent machine's case).
    cache = tmp_path / "cache" / "harmonic.json"
    argv = ["--val_metrics", str(metrics), "--harmonic_dir", str(data / "test"), "--harmonic_cache", str(cache),
            "--margin", "-100"]
    assert run(select_checkpoint.main, select_checkpoint.parse_args, argv) == 0
    first = capsys.readouterr().out
    (entry, scores), = json.loads(cache.read_text()).items()
    assert entry.endswith(" 64 0.4") and scores["psnr_lowpass"] > 0

    def no_scoring(*args, **kwargs):
        raise AssertionError("the harmonic fill was scored again")
    with monkeypatch.context() as patched:
        patched.setattr(select_checkpoint, "harmonic_summary", no_scoring)
        assert run(select_checkpoint.main, select_checkpoint.parse_args, argv) == 0
    assert capsys.readouterr().out == first
    cache.write_text("{not json")
    assert run(select_checkpoint.main, select_checkpoint.parse_args, argv) == 2
    err = capsys.readouterr().err
    assert "--harmonic_cache" in err and "not JSON" in err
    # A line nobody reaches: one error line, exit status 2, nothing exported.
    assert run(select_checkpoint.main, select_checkpoint.parse_args,
               ["--val_metrics", str(metrics), "--min_lowpass", "99", "--export", str(tmp_path / "no.pth")]) == 2
    assert "no checkpoint passes the rule" in capsys.readouterr().err and not (tmp_path / "no.pth").exists()
    # A chroma bound nobody meets (a fill with no colour detail at all), on the truth's measured shares: the same.
    assert run(select_checkpoint.main, select_checkpoint.parse_args,
               ["--val_metrics", str(metrics), "--harmonic_dir", str(data / "test"), "--margin", "-100",
                "--max_chroma", "0"]) == 2
    assert "none keeps its colour sparkle within the chroma share bound 0.00" in capsys.readouterr().err


def test_pack_resizes_the_photos_and_carries_working_weights(tmp_path, capsys):
    write_images(tmp_path / "set" / "train", 3, size=(80, 64))
    write_images(tmp_path / "set" / "val", 2, start_seed=50, size=(30, 24))
    (tmp_path / "set" / "CREDITS.csv").write_text("file,author\ntrain/img_000.png,someone\n")
    out = tmp_path / "pack"
    out.mkdir()  # an earlier pack, which this one replaces
    (out / pack_device_run.PACK_MARKER).write_text("")
    (out / "stale.jpg").write_text("")
    assert run(pack_device_run.main, pack_device_run.parse_args,
               ["--train_dir", str(tmp_path / "set" / "train"), "--val_dir", str(tmp_path / "set" / "val"),
                "--out", str(out), "--short_side", "32", "--harmonic_sizes", "24"]) == 0
    assert not (out / "stale.jpg").exists()
    assert "3 train + 2 val photos" in capsys.readouterr().out
    # The pick's line, scored here for the device (tools/device_train.sh passes --harmonic_cache).
    scores = json.loads((out / "val_harmonic.json").read_text())
    assert list(scores) == ["val 24 0.4"] and set(scores["val 24 0.4"]) == set(select_checkpoint.HARMONIC_KEYS)
    assert not (out / "harmonic_scratch").exists()
    assert sorted(Image.open(p).size for p in (out / "train").glob("*.jpg")) == [(40, 32)] * 3
    assert sorted(Image.open(p).size for p in (out / "val").glob("*.jpg")) == [(30, 24)] * 2  # never enlarged
    assert "someone" in (out / "CREDITS.csv").read_text()
    assert (out / "short_side.txt").read_text().strip() == "32"  # device_train.sh's smallest crop comes from it
    assert (out / pack_device_run.PACK_MARKER).is_file()  # so that the next pack may replace it
    assert all((out / "site" / name / "__init__.py").is_file() for name in pack_device_run.SITE_PACKAGES)

    # On the device the stand-in package comes first on PYTHONPATH: the weights are found there and load.
    site = out / "site"
    found = subprocess.run([sys.executable, "-c", "from models.effnet import find_effnet_lite0_weights as f; "
                            "print(f()[0])"], cwd=ROOT, capture_output=True, text=True,
                           env={**os.environ, "PYTHONPATH": f"{site}{os.pathsep}{ROOT}"})
    standin = Path(found.stdout.strip())
    assert found.returncode == 0 and standin.is_relative_to(site), found.stderr
    from models.effnet import find_effnet_lite0_weights, load_effnet_lite0
    original, _ = load_effnet_lite0()
    carried, reason = load_effnet_lite0(standin)
    assert reason is None and standin.stat().st_size < 0.6 * find_effnet_lite0_weights()[0].stat().st_size
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    for a, b in zip(original.features(x), carried.features(x)):
        assert ((a - b).norm() / a.norm()).item() < 0.02  # fp16 rounding only

    # As on the device: the packages its image lacks hidden, but for the carried ones. A run of the recipe's kind
    # (EfficientNet-Lite0 perceptual loss and projected discriminator, SSIM, val with its Frechet distance) trains.
    block = tmp_path / "block"
    block.mkdir()
    (block / "sitecustomize.py").write_text(BLOCKER.format(names=pack_device_run.DEVICE_LACKS, site=str(site)))
    argv = tiny_gan_train_argv(tmp_path / "set", tmp_path / "run", "--perceptual", "effnet", "--discriminator",
                               "projected", "--gan_loss", "hinge", "--lambda_fm", "0", "--val_dir", str(out / "val"))
    argv[argv.index("--test_dir") + 1] = str(out / "val")
    trained = subprocess.run([sys.executable, "main.py", *argv], cwd=ROOT, capture_output=True, text=True,
                             env={**os.environ, "PYTHONPATH": os.pathsep.join(map(str, (block, site, ROOT)))})
    assert trained.returncode == 0, trained.stderr[-2000:]
    assert "val epoch 1:" in trained.stdout and (tmp_path / "run" / "checkpoint_epoch_1.pth").is_file()
    hidden = subprocess.run([sys.executable, "-c", "import lpips"], cwd=ROOT, capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": os.pathsep.join(map(str, (block, site, ROOT)))})
    assert hidden.returncode != 0 and "not on the device" in hidden.stderr  # the blocker works

    # Over the size limit: one error line naming the fix.
    assert run(pack_device_run.main, pack_device_run.parse_args,
               ["--train_dir", str(tmp_path / "set" / "train"), "--val_dir", str(tmp_path / "set" / "val"),
                "--out", str(out), "--limit_mib", "1", "--harmonic_sizes", ""]) == 2
    assert "over --limit_mib 1: pass a smaller --short_side" in capsys.readouterr().err


def test_pack_never_deletes_a_folder_it_did_not_write(tmp_path, capsys):
    write_images(tmp_path / "train", 2, size=(40, 32))
    (tmp_path / "empty").mkdir()
    work = tmp_path / "work"
    work.mkdir()
    (work / "notes.txt").write_text("keep me")

    def pack(train_dir, out):
        return run(pack_device_run.main, pack_device_run.parse_args,
                   ["--train_dir", str(train_dir), "--val_dir", str(tmp_path / "train"), "--out", str(out),
                    "--harmonic_sizes", ""])

    assert pack(tmp_path / "empty", work) == 2  # the photos are checked before --out is touched
    assert "no images" in capsys.readouterr().err
    assert pack(tmp_path / "train", work) == 2  # a folder that is not an earlier pack is refused
    assert "is not a pack this tool wrote" in capsys.readouterr().err
    assert (work / "notes.txt").read_text() == "keep me"
    earlier = tmp_path / "earlier"
    earlier.mkdir()
    (earlier / pack_device_run.PACK_MARKER).write_text("")
    (earlier / "stale.txt").write_text("")
    assert pack(tmp_path / "empty", earlier) == 2 and (earlier / "stale.txt").is_file()


def test_average_checkpoints_exports_the_mean_generator_and_refuses_other_architectures(tmp_path, capsys):
    from models import GeneratorConfig, UNetGenerator
    from utils.loading import export_generator, load_generator
    from tools.average_checkpoints import main as average_main, parse_args as average_args
    paths = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        paths.append(str(export_generator(UNetGenerator(GeneratorConfig(64, 8)),
                                          {"image_size": 64, "crop_ratio": 0.4}, tmp_path / f"g{seed}.pth")))
    average_main(average_args(paths + ["--export", str(tmp_path / "soup.pth")]))
    soup, config = load_generator(tmp_path / "soup.pth")
    assert config["averaged_from"] == paths and config["image_size"] == 64
    first, second = (load_generator(p)[0].state_dict() for p in paths)
    averaged = [name for name, value in soup.state_dict().items() if value.is_floating_point()]
    for name in averaged:  # exports hold large tensors in fp16: compare at that precision
        assert torch.allclose(soup.state_dict()[name], (first[name] + second[name]) / 2, atol=2e-3), name
    assert sum(not torch.equal(first[name], second[name]) for name in averaged) > len(averaged) // 2  # two seeds
    other = export_generator(UNetGenerator(GeneratorConfig(64, 16)), {"image_size": 64, "crop_ratio": 0.4},
                             tmp_path / "wide.pth")
    assert run(average_main, average_args, [paths[0], str(other), "--export", str(tmp_path / "bad.pth")]) == 2
    assert "has another architecture" in capsys.readouterr().err and not (tmp_path / "bad.pth").exists()
    assert run(average_main, average_args, [paths[0], "--export", str(tmp_path / "one.pth")]) == 2

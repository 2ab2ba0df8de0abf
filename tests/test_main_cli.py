"""main.py end to end on generated images: train, resume (exactly), eval, eval_2, Ctrl-C, bad input."""
import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import main as gan
from data.masks import patch_size
from tests.helpers import interrupt_at_step, minute_per_clock_read
from utils.checkpoint import load_checkpoint, save_checkpoint
from utils.cli import run
from utils.evaluation import pair_name

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--image_size", "64", "--ngf", "8", "--ndf", "8", "--batch_size", "2", "--log_interval", "1"]


def train_args(data, out, *extra):
    return gan.parse_args(["--mode", "train", "--train_dir", str(data / "train"), "--test_dir", str(data / "test"),
                           "--checkpoint_dir", str(out / "ckpt"), "--results_dir", str(out / "results"),
                           "--save_every", "1", *TINY, *extra])


def test_train_resume_eval_eval2(data, tmp_path):
    gan.main(train_args(data, tmp_path, "--epochs", "1", "--export", str(tmp_path / "gen.pth")))
    ckpt = tmp_path / "ckpt" / "checkpoint_epoch_1.pth"
    state = load_checkpoint(ckpt, kinds=("gan",))
    assert state["epoch"] == 1 and state["step"] == 2  # 4 images, batch 2
    assert state["config"]["image_size"] == 64 and state["config"]["perceptual_loss"] is True  # EfficientNet
    assert {"generator", "generator_ema", "discriminator", "opt_g", "opt_d", "rng"} <= set(state)
    assert state["generator_ema"]["updates"] == 2
    logs = tmp_path / "results" / "train"
    assert (logs / "loss_curve.png").is_file() and (logs / "samples" / "epoch_0001.png").is_file()
    with open(logs / "losses.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == [1, 2] and all(np.isfinite(float(r["G_total"])) for r in rows)

    # Resume as in the document: continues with epoch 2, recipe from the checkpoint (ngf 8, not 64).
    gan.main(gan.parse_args(["--mode", "train", "--checkpoint_path", str(ckpt), "--epochs", "2",
                             "--train_dir", str(data / "train"), "--test_dir", str(data / "test"),
                             "--checkpoint_dir", str(tmp_path / "ckpt"), "--results_dir", str(tmp_path / "results"),
                             "--log_interval", "1"]))
    resumed = load_checkpoint(tmp_path / "ckpt" / "checkpoint_epoch_2.pth", kinds=("gan",))
    assert resumed["epoch"] == 2 and resumed["step"] == 4 and resumed["config"]["ngf"] == 8
    with open(logs / "losses.csv") as f:
        assert [int(r["step"]) for r in csv.DictReader(f)] == [1, 2, 3, 4]

    # A checkpoint already at --epochs is only exported (fp16 weights, same generator).
    gan.main(gan.parse_args(["--mode", "train", "--checkpoint_path", str(tmp_path / "ckpt" / "checkpoint_epoch_2.pth"),
                             "--epochs", "2", "--export", str(tmp_path / "gen2.pth")]))
    exported, _ = gan.load_generator(tmp_path / "gen2.pth")
    for key, value in exported.state_dict().items():
        assert torch.allclose(value.float(), resumed["generator"][key].float(), atol=2e-3, rtol=2e-3), key
    assert load_checkpoint(tmp_path / "gen2.pth", kinds=("gan_generator",))["config"]["epochs"] == 2

    # eval needs only the checkpoint: size and crop ratio come from it.
    results = tmp_path / "eval"
    gan.main(gan.parse_args(["--mode", "eval", "--checkpoint_path", str(tmp_path / "gen.pth"),
                             "--test_dir", str(data / "test"), "--results_dir", str(results)]))
    for name in ("img_100", "img_101"):
        for file_name in ("original", "input", "generated"):
            assert Image.open(results / name / f"{file_name}.png").size == (64, 64)
    with open(results / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["image"] for r in rows] == ["img_100", "img_101"]
    assert set(rows[0]) == {"image", "psnr", "ssim", "psnr_hole", "ssim_hole", "l1_hole", "psnr_lowpass", "placement",
                            "sharpness", "checkerboard", "stripes", "stripes_truth", "chroma", "chroma_truth",
                            "effnet_distance", "lpips"}
    assert all(np.isfinite(float(r["effnet_distance"])) for r in rows)
    assert all(np.isfinite(float(r["psnr_hole"])) for r in rows)
    assert all(0 <= float(r[key]) <= 1 for r in rows for key in ("stripes", "stripes_truth", "chroma", "chroma_truth"))
    assert float(rows[0]["psnr"]) > float(rows[0]["psnr_hole"])  # known pixels are exact

    # eval_2 on two photos of different sizes: the known patches are exactly those of the inputs.
    one, two = data / "one.png", data / "two.png"
    Image.open(data / "train" / "img_000.png").resize((120, 64)).save(one)
    Image.open(data / "train" / "img_001.png").resize((64, 100)).save(two)
    gan.main(gan.parse_args(["--mode", "eval_2", "--checkpoint_path", str(ckpt), "--image1", str(one),
                             "--image2", str(two), "--results_dir", str(results)]))
    folder = results / f"{pair_name(one, two)}_eval_2"
    out = np.asarray(Image.open(folder / "generated_combined.png"))
    first, second = np.asarray(Image.open(folder / "image1.png")), np.asarray(Image.open(folder / "image2.png"))
    p = patch_size(64, 0.4)
    assert np.array_equal(out[64 - p:, :p], first[64 - p:, :p])
    assert np.array_equal(out[:p, 64 - p:], second[:p, 64 - p:])
    assert (folder / "input_combined.png").is_file()
    gan.main(gan.parse_args(["--mode", "eval_2", "--checkpoint_path", str(ckpt), "--image1", str(one),
                             "--image2", str(two), "--output", str(tmp_path / "filled.png")]))
    assert np.array_equal(np.asarray(Image.open(tmp_path / "filled.png")), out)


def test_resume_reproduces_uninterrupted_run(data, tmp_path):
    # The schedules too: reconstruction only in epoch 1, then the GAN terms; learning rate halved in epoch 2.
    # The texture head draws noise every step, from the RNG state the checkpoint carries.
    recipe = ["--mask_kinds", "gap,box,stroke", "--adv_start_epoch", "1", "--lr_decay_start", "1",
              "--texture_noise", "2", "--recon_lowpass", "1", "--lambda_detail", "1", "--lambda_mse", "10"]
    gan.main(train_args(data, tmp_path / "straight", "--epochs", "2", *recipe))
    gan.main(train_args(data, tmp_path / "split", "--epochs", "1", *recipe))
    torch.manual_seed(1234)  # whatever happens in between must not matter
    gan.main(gan.parse_args(["--mode", "train", "--epochs", "2", "--checkpoint_path",
                             str(tmp_path / "split" / "ckpt" / "checkpoint_epoch_1.pth"),
                             "--train_dir", str(data / "train"), "--test_dir", str(data / "test"),
                             "--checkpoint_dir", str(tmp_path / "split" / "ckpt"),
                             "--results_dir", str(tmp_path / "split" / "results")]))
    a = load_checkpoint(tmp_path / "straight" / "ckpt" / "checkpoint_epoch_2.pth", kinds=("gan",))
    b = load_checkpoint(tmp_path / "split" / "ckpt" / "checkpoint_epoch_2.pth", kinds=("gan",))
    assert a["generator_ema"]["updates"] == b["generator_ema"]["updates"] == 4
    a["generator_ema"], b["generator_ema"] = a["generator_ema"]["module"], b["generator_ema"]["module"]
    assert "texture.4.weight" in a["generator"]
    for part in ("generator", "generator_ema", "discriminator"):
        for key in a[part]:
            assert torch.equal(a[part][key], b[part][key]), f"{part}.{key} differs after resume"
    assert a["opt_g"]["param_groups"][0]["lr"] == b["opt_g"]["param_groups"][0]["lr"] == 1e-4
    assert torch.equal(a["rng"]["torch"], b["rng"]["torch"])


def test_exporting_a_finished_run_needs_no_training_photos(data, tmp_path, capsys):
    import shutil
    from utils.loading import load_generator
    photos = tmp_path / "photos"
    shutil.copytree(data / "train", photos)
    gan.main(gan.parse_args(["--mode", "train", "--train_dir", str(photos), "--test_dir", str(data / "test"),
                             "--checkpoint_dir", str(tmp_path / "ckpt"), "--results_dir", str(tmp_path / "results"),
                             "--epochs", "1", *TINY]))
    shutil.rmtree(photos)  # e.g. a checkpoint copied from another machine
    checkpoint = tmp_path / "ckpt" / "checkpoint_epoch_1.pth"
    gan.main(gan.parse_args(["--mode", "train", "--checkpoint_path", str(checkpoint), "--epochs", "1",
                             "--export", str(tmp_path / "g.pth")]))
    assert "nothing to train" in capsys.readouterr().out
    exported, trained = load_generator(tmp_path / "g.pth")[0], load_generator(checkpoint)[0]  # the EMA weights
    for key, value in trained.state_dict().items():
        assert torch.allclose(exported.state_dict()[key], value, atol=1e-3, rtol=1e-3), key  # fp16 in the export


def test_a_constant_rate_run_is_ended_with_a_decay_decided_at_resume(data, tmp_path, capsys):
    # pix2pix's schedule decided late: train at a constant rate, then resume with --lr_decay_start/--epochs.
    gan.main(train_args(data, tmp_path, "--epochs", "1", "--lr", "3e-4"))
    first = tmp_path / "ckpt" / "checkpoint_epoch_1.pth"
    capsys.readouterr()
    gan.main(gan.parse_args(["--mode", "train", "--checkpoint_path", str(first), "--epochs", "3",
                             "--lr_decay_start", "1"]))
    assert "changed for the rest of the run: --lr_decay_start 1 (was None)" in capsys.readouterr().out
    second = load_checkpoint(tmp_path / "ckpt" / "checkpoint_epoch_2.pth", kinds=("gan",))
    assert second["config"]["lr_decay_start"] == 1 and second["config"]["lr"] == 3e-4
    assert second["opt_g"]["param_groups"][0]["lr"] == pytest.approx(3e-4 * 2 / 3)  # epoch 2 of a 1..3 decay
    # Resumed again without the flag, the run keeps the decay it now has.
    gan.main(gan.parse_args(["--mode", "train", "--checkpoint_path", str(tmp_path / "ckpt" / "checkpoint_epoch_2.pth"),
                             "--epochs", "3"]))
    third = load_checkpoint(tmp_path / "ckpt" / "checkpoint_epoch_3.pth", kinds=("gan",))
    assert third["config"]["lr_decay_start"] == 1
    assert third["opt_d"]["param_groups"][0]["lr"] == pytest.approx(3e-4 / 3)


def test_ctrl_c_saves_a_checkpoint(data, tmp_path, monkeypatch):
    interrupt_at_step(monkeypatch, gan)
    with pytest.raises(SystemExit) as exit_info:
        gan.main(train_args(data, tmp_path, "--epochs", "3"))
    assert exit_info.value.code == 130
    state = load_checkpoint(tmp_path / "ckpt" / "checkpoint_interrupted.pth", kinds=("gan",))
    assert state["epoch"] == 0 and state["step"] == 1  # resuming re-runs the unfinished epoch 1


def test_sigterm_saves_a_checkpoint_too_and_the_handler_is_restored(data, tmp_path, monkeypatch):
    import os
    import signal
    calls, original = [], gan.train_step

    def terminated(*args, **kwargs):  # `kill PID` (or a scheduler) at the second step
        calls.append(1)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGTERM)
        return original(*args, **kwargs)
    monkeypatch.setattr(gan, "train_step", terminated)
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(SystemExit) as exit_info:
        gan.main(train_args(data, tmp_path, "--epochs", "3"))
    assert exit_info.value.code == 130 and signal.getsignal(signal.SIGTERM) is before
    state = load_checkpoint(tmp_path / "ckpt" / "checkpoint_interrupted.pth", kinds=("gan",))
    assert state["epoch"] == 0 and state["step"] == 1


def test_max_minutes_stops_at_an_epoch_boundary_with_a_checkpoint(data, tmp_path, monkeypatch, capsys):
    minute_per_clock_read(monkeypatch)
    export = tmp_path / "export.pth"
    gan.main(train_args(data, tmp_path, "--epochs", "5", "--save_every", "10", "--max_minutes", "2",
                        "--export", str(export)))
    saved = sorted(p.name for p in (tmp_path / "ckpt").glob("checkpoint_*.pth"))
    assert saved == ["checkpoint_epoch_2.pth"]  # the stop epoch is saved although --save_every is 10
    assert "stopped after epoch 2 of 5: --max_minutes 2 spent" in capsys.readouterr().out
    assert export.is_file()  # the run's end: the export of what was trained
    state = load_checkpoint(tmp_path / "ckpt" / "checkpoint_epoch_2.pth", kinds=("gan",))
    assert state["epoch"] == 2 and state["step"] == 4
    gan.main(gan.parse_args(["--mode", "train", "--epochs", "3", "--checkpoint_path",
                             str(tmp_path / "ckpt" / "checkpoint_epoch_2.pth"), "--train_dir", str(data / "train"),
                             "--checkpoint_dir", str(tmp_path / "ckpt"), "--results_dir", str(tmp_path / "results")]))
    assert load_checkpoint(tmp_path / "ckpt" / "checkpoint_epoch_3.pth", kinds=("gan",))["step"] == 6


def test_atomic_checkpoint_write_leaves_no_temp_files(tmp_path):
    save_checkpoint({"kind": "gan", "config": {}}, tmp_path / "a.pth")
    assert [p.name for p in tmp_path.iterdir()] == ["a.pth"]


def _error(argv, capsys):
    try:
        code = run(gan.main, gan.parse_args, argv)
    except SystemExit as exc:  # argparse's own refusals (Parser.error)
        code = exc.code
    err = capsys.readouterr().err.strip()
    return code, err


def test_bad_input_errors(data, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    (tmp_path / "junk.pth").write_bytes(b"definitely not a checkpoint")
    torch.save({"kind": "diffusion", "config": {}}, tmp_path / "other.pth")
    gen = tmp_path / "gen.pth"
    gan.main(train_args(data, tmp_path, "--epochs", "1", "--export", str(gen)))
    capsys.readouterr()  # drop the training output
    cases = [
        (["--mode", "eval", "--checkpoint_path", str(tmp_path / "missing.pth")], "checkpoint not found"),
        (["--mode", "eval", "--checkpoint_path", str(tmp_path / "junk.pth")], "cannot read checkpoint"),
        (["--mode", "eval", "--checkpoint_path", str(tmp_path / "other.pth")], "is not a gan"),
        (["--mode", "eval", "--checkpoint_path", str(gen), "--test_dir", str(tmp_path / "empty")], "no images"),
        (["--mode", "train", "--train_dir", str(tmp_path / "empty")], "no images"),
        (["--mode", "train", "--crop_ratio", "0.6"], "--crop_ratio"),
        (["--mode", "train", "--max_minutes", "0"], "--max_minutes must be > 0"),
        (["--mode", "train", "--image_size", "100"], "--image_size"),
        (["--mode", "eval_2", "--checkpoint_path", str(gen), "--image1", str(data / "test" / "img_100.png")],
         "--image2"),
        (["--mode", "eval_2", "--checkpoint_path", str(gen), "--image1", str(tmp_path / "junk.pth"),
          "--image2", str(data / "test" / "img_100.png"), "--results_dir", str(tmp_path / "r2")], "cannot read image"),
        (["--mode", "train", "--checkpoint_path", str(gen), "--epochs", "2"],
         "is not a gan checkpoint (found kind='gan_generator'); pass one written by python main.py --mode train"),
        (["--mode", "train", "--epochs", "-1"], "--epochs must be >= 1, got -1"),
        (["--mode", "train", "--repeat", "0"], "--repeat must be >= 1"),
        (["--mode", "train", "--lr", "-1"], "--lr must be >= 0"),
        (["--mode", "train", "--lr_d", "-0.1"], "--lr_d must be >= 0"),
        (["--mode", "train", "--num_workers", "-1"], "--num_workers must be >= 0"),
        (["--mode", "train", "--threads", "abc"], "--threads must be auto or a number"),
        (["--mode", "train", "--ngf", "0"], "ngf must be >= 1"),
        (["--mode", "train", "--ndf", "0"], "--ndf and --d_layers must be >= 1"),
        (["--mode", "train", "--no_such_flag"], "unrecognized arguments: --no_such_flag"),
        (["--mode", "train", "--epochs", "two"], "--epochs: invalid int value"),
    ]
    for argv, message in cases:
        code, err = _error(argv, capsys)
        assert code == 2, argv
        assert err.startswith("error: ") and message in err and "\n" not in err, (argv, err[-600:])
    assert not (tmp_path / "r2").exists(), "a failed eval_2 must not leave an output folder"


def test_cli_subprocess_help_and_exit_code(tmp_path):
    help_text = subprocess.run([sys.executable, "main.py", "--help"], cwd=ROOT, capture_output=True, text=True)
    assert help_text.returncode == 0 and "--checkpoint-path" in help_text.stdout and "eval_2" in help_text.stdout
    bad = subprocess.run([sys.executable, "main.py", "--mode", "eval", "--checkpoint-path", str(tmp_path / "x.pth")],
                         cwd=ROOT, capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.strip().splitlines() == [f"error: checkpoint not found: {tmp_path / 'x.pth'} "
                                                                        "(check --checkpoint_path)"]


def test_baseline_eval_uses_the_same_code(data, tmp_path):
    for name in ("mean", "telea"):
        gan.main(gan.parse_args(["--mode", "eval", "--baseline", name, "--image_size", "64",
                                 "--test_dir", str(data / "test"), "--results_dir", str(tmp_path / name)]))
        with open(tmp_path / name / "metrics.csv") as f:
            rows = list(csv.DictReader(f))
        assert [r["image"] for r in rows] == ["img_100", "img_101"]
        assert all(10 < float(r["psnr_hole"]) < 60 for r in rows)
    # Two different fills scored by the same code: their hole errors differ.
    mean_l1 = np.mean([float(r["l1_hole"]) for r in csv.DictReader(open(tmp_path / "mean" / "metrics.csv"))])
    telea_l1 = np.mean([float(r["l1_hole"]) for r in csv.DictReader(open(tmp_path / "telea" / "metrics.csv"))])
    assert telea_l1 != mean_l1


def test_compiled_training_saves_plain_weights(data, tmp_path, monkeypatch):
    # Dynamo's eager backend: the same wrapped modules (OptimizedModule, `_orig_mod.` keys) as inductor's, without
    # its code generation, which takes ~3 minutes on a 2-core machine with a cold cache (a fresh CI checkout).
    compiled = []
    plain_compile = torch.compile

    def eager_compile(module, **options):
        compiled.append(module)
        return plain_compile(module, backend="eager", **options)

    monkeypatch.setattr(torch, "compile", eager_compile)
    gan.main(train_args(data, tmp_path, "--epochs", "1", "--compile"))
    assert len(compiled) == 2  # the generator and the discriminator
    state = load_checkpoint(tmp_path / "ckpt" / "checkpoint_epoch_1.pth", kinds=("gan",))
    assert state["step"] == 2 and not any("_orig_mod" in key for key in state["generator"])
    generator = gan.build_generator(state["config"])
    generator.load_state_dict(state["generator"])  # loads into the plain module: strict keys
    assert all(torch.isfinite(p).all() for p in generator.parameters())

    # The projected discriminator: its frozen feature network is compiled in place, its spectral-norm heads stay eager
    # (inductor refuses their in-place power iteration); its checkpoint keys stay plain too.
    compiled.clear()
    gan.main(train_args(data, tmp_path / "projected", "--epochs", "1", "--compile", "--discriminator", "projected",
                        "--gan_loss", "hinge", "--lambda_fm", "0"))
    names = sorted(getattr(c, "__name__", type(c).__name__) for c in compiled)
    assert names == ["UNetGenerator", "mixed_features"], names
    state = load_checkpoint(tmp_path / "projected" / "ckpt" / "checkpoint_epoch_1.pth", kinds=("gan",))
    assert state["step"] == 2 and any(key.startswith("heads.") for key in state["discriminator"])
    assert not any("_orig_mod" in key or key.startswith("features.") for key in state["discriminator"])

"""diffusion.py and models/diffusion.py: shapes, samplers, known pixels, CLI train/resume/eval/eval_2, bad input.

Every model here is tiny (64^2, widths 8 and 16, ~40 k parameters) and samples with 2-5 steps, on
generated images in a temp folder. No network.
"""
import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import diffusion
import main as gan
from data.masks import masked_input, patch_size
from models.diffusion import (SAMPLERS, InpaintUNet, forward_noise, make_noise_scheduler, make_sampler,
                              repaint_sample, scheduler_config)
from tests.helpers import interrupt_at_step, minute_per_clock_read
from utils.checkpoint import load_checkpoint, save_checkpoint
from utils.cli import run
from utils.evaluation import pair_name

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--image_size", "64", "--base_channels", "8", "--channel_mult", "1,2", "--batch_size", "2",
        "--log_interval", "1", "--num_inference_steps", "3"]


def train_args(data, out, *extra):
    return diffusion.parse_args(["--mode", "train", "--train_dir", str(data / "train"),
                                 "--test_dir", str(data / "test"), "--checkpoint_dir", str(out / "ckpt"),
                                 "--results_dir", str(out / "results"), "--save_every", "1", *TINY, *extra])


def test_network_sees_seven_channels_and_predicts_three():
    model = InpaintUNet(64, (8, 16), layers_per_block=1)
    assert model.unet.conv_in.in_channels == 7 and model.unet.conv_out.out_channels == 3
    masked, mask = masked_input(torch.rand(2, 3, 64, 64) * 2 - 1, 0.4)
    eps = model(torch.randn(2, 3, 64, 64), torch.tensor([0, 999]), masked, mask)
    assert eps.shape == (2, 3, 64, 64) and torch.isfinite(eps).all()
    with pytest.raises(ValueError, match="divisible"):
        InpaintUNet(40, (8, 16, 16, 32, 32))  # 40 is not divisible by 2^4


@pytest.mark.parametrize("name", SAMPLERS)
def test_samplers_recover_the_image_from_an_oracle(name):
    """Scheduler round trip: with the true noise as the prediction, every sampler returns the image."""
    image = torch.rand(2, 3, 64, 64) * 1.8 - 0.9
    masked, mask = masked_input(image, 0.4)
    config = scheduler_config(make_noise_scheduler())
    abar = make_noise_scheduler().alphas_cumprod

    def oracle(x_t, t, masked, mask):  # eps such that x_t = sqrt(abar_t) image + sqrt(1 - abar_t) eps
        a = abar[int(t[0])]
        return (x_t - a.sqrt() * image) / (1 - a).sqrt()

    steps = 1000 if name == "ddpm" else 10
    out = repaint_sample(oracle, make_sampler(name, config), masked, mask, steps, torch.Generator().manual_seed(0))
    assert (out - image).abs().max() < 2e-3, name


def test_scheduler_config_survives_a_weights_only_checkpoint(tmp_path):
    noise_scheduler = make_noise_scheduler(1000, "linear")
    save_checkpoint({"kind": "diffusion", "scheduler_config": scheduler_config(noise_scheduler)}, tmp_path / "s.pth")
    config = load_checkpoint(tmp_path / "s.pth", kinds=("diffusion",))["scheduler_config"]
    for name in SAMPLERS:
        assert torch.equal(make_sampler(name, config).alphas_cumprod, noise_scheduler.alphas_cumprod)
    x0, noise = torch.rand(1, 3, 8, 8), torch.randn(1, 3, 8, 8)
    assert torch.allclose(forward_noise(noise_scheduler.alphas_cumprod, x0, noise, 500),
                          noise_scheduler.add_noise(x0, noise, torch.tensor([500])), atol=1e-6)


def test_sampling_keeps_known_pixels_and_is_seeded():
    torch.manual_seed(0)
    model = InpaintUNet(64, (8, 16)).eval()
    masked, mask = masked_input(torch.rand(2, 3, 64, 64) * 2 - 1, 0.4)
    sampler = make_sampler("ddim", scheduler_config(make_noise_scheduler()))
    rng_before = torch.get_rng_state()
    for dtype in (None, torch.bfloat16):
        out = repaint_sample(model, sampler, masked, mask, 3, torch.Generator().manual_seed(1), dtype)
        assert out.shape == masked.shape and out.dtype == torch.float32
        assert torch.equal(out * (1 - mask), masked), "known pixels must be kept exactly"
        assert out.abs().max() <= 1.0
    again = repaint_sample(model, sampler, masked, mask, 3, torch.Generator().manual_seed(1), torch.bfloat16)
    assert torch.equal(out, again)
    assert torch.equal(torch.get_rng_state(), rng_before), "sampling must not touch the global RNG"


def test_train_resume_eval_eval2(data, tmp_path):
    diffusion.main(train_args(data, tmp_path, "--epochs", "1"))
    ckpt = tmp_path / "ckpt" / "checkpoint_epoch_1.pth"
    state = load_checkpoint(ckpt, kinds=("diffusion",))
    assert state["epoch"] == 1 and state["step"] == 2  # 4 images, batch 2
    assert {"model", "ema", "optimizer", "rng", "scheduler_config", "config"} <= set(state)
    assert state["config"]["base_channels"] == 8 and state["scheduler_config"]["num_train_timesteps"] == 1000
    logs = tmp_path / "results" / "train"
    assert (logs / "loss_curve.png").is_file() and (logs / "samples" / "epoch_0001.png").is_file()
    with open(logs / "losses.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == [1, 2] and all(np.isfinite(float(r["loss"])) for r in rows)
    assert float(rows[0]["images_per_s"]) > 0

    # The sampling network carries the EMA weights, not the raw ones.
    model, config, _ = diffusion.load_model(ckpt)
    for param, shadow in zip(model.parameters(), state["ema"]["shadow_params"]):
        assert torch.equal(param, shadow)
    assert config["image_size"] == 64

    # The sampling-only export holds the same EMA network, at a fraction of the size.
    from utils.loading import export_diffusion_model
    exported = export_diffusion_model(ckpt, tmp_path / "diffusion_export.pth")
    assert exported.stat().st_size < 0.5 * ckpt.stat().st_size
    model_export, config_export, _ = diffusion.load_model(exported)
    assert config_export == config
    for a, b in zip(model.state_dict().values(), model_export.state_dict().values()):
        assert torch.equal(a, b)

    # Resume as in the document: epoch 2, recipe (widths) from the checkpoint, not the defaults.
    diffusion.main(diffusion.parse_args(["--mode", "train", "--checkpoint_path", str(ckpt), "--epochs", "2",
                                         "--train_dir", str(data / "train"), "--test_dir", str(data / "test"),
                                         "--checkpoint_dir", str(tmp_path / "ckpt"),
                                         "--results_dir", str(tmp_path / "results"), "--log_interval", "1",
                                         "--num_inference_steps", "2"]))
    resumed = load_checkpoint(tmp_path / "ckpt" / "checkpoint_epoch_2.pth", kinds=("diffusion",))
    assert resumed["epoch"] == 2 and resumed["step"] == 4 and resumed["config"]["channel_mult"] == "1,2"
    with open(logs / "losses.csv") as f:
        assert [int(r["step"]) for r in csv.DictReader(f)] == [1, 2, 3, 4]

    # eval: same layout and columns as main.py; the known pixels of every result are the input's.
    results = tmp_path / "eval"
    diffusion.main(diffusion.parse_args(["--mode", "eval", "--checkpoint_path", str(ckpt), "--num_inference_steps",
                                         "3", "--test_dir", str(data / "test"), "--results_dir", str(results)]))
    with open(results / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["image"] for r in rows] == ["img_100", "img_101"]
    assert set(rows[0]) == {"image", "psnr", "ssim", "psnr_hole", "ssim_hole", "l1_hole", "psnr_lowpass", "placement",
                            "sharpness", "checkerboard", "stripes", "stripes_truth", "chroma", "chroma_truth",
                            "effnet_distance", "lpips"}
    assert all(np.isfinite(float(r["effnet_distance"])) for r in rows)
    p = patch_size(64, 0.4)
    for name in ("img_100", "img_101"):
        original, generated = (np.asarray(Image.open(results / name / f"{f}.png")) for f in ("original", "generated"))
        assert generated.shape == (64, 64, 3)
        assert np.array_equal(generated[64 - p:, :p], original[64 - p:, :p])
        assert np.array_equal(generated[:p, 64 - p:], original[:p, 64 - p:])
    diffusion.main(diffusion.parse_args(["--mode", "eval", "--checkpoint_path", str(ckpt), "--scheduler", "ddpm",
                                         "--num_inference_steps", "5", "--test_dir", str(data / "test"),
                                         "--results_dir", str(tmp_path / "eval_ddpm")]))
    assert (tmp_path / "eval_ddpm" / "metrics.csv").is_file()

    # eval_2 on two photos of different sizes: the known patches are exactly those of the inputs.
    one, two = data / "one.png", data / "two.png"
    Image.open(data / "train" / "img_000.png").resize((120, 64)).save(one)
    Image.open(data / "train" / "img_001.png").resize((64, 100)).save(two)
    diffusion.main(diffusion.parse_args(["--mode", "eval_2", "--checkpoint-path", str(ckpt), "--image1", str(one),
                                         "--image2", str(two), "--results-dir", str(results),
                                         "--scheduler", "dpm", "--num-inference-steps", "2"]))
    folder = results / f"{pair_name(one, two)}_eval_2"
    out = np.asarray(Image.open(folder / "generated_combined.png"))
    first, second = np.asarray(Image.open(folder / "image1.png")), np.asarray(Image.open(folder / "image2.png"))
    assert np.array_equal(out[64 - p:, :p], first[64 - p:, :p])
    assert np.array_equal(out[:p, 64 - p:], second[:p, 64 - p:])


def test_resume_reproduces_uninterrupted_run(data, tmp_path):
    diffusion.main(train_args(data, tmp_path / "straight", "--epochs", "2", "--mask_kinds", "gap,box"))
    diffusion.main(train_args(data, tmp_path / "split", "--epochs", "1", "--mask_kinds", "gap,box"))
    torch.manual_seed(1234)  # whatever happens in between must not matter
    diffusion.main(diffusion.parse_args(["--mode", "train", "--epochs", "2", "--checkpoint_path",
                                         str(tmp_path / "split" / "ckpt" / "checkpoint_epoch_1.pth"),
                                         "--train_dir", str(data / "train"), "--test_dir", str(data / "test"),
                                         "--checkpoint_dir", str(tmp_path / "split" / "ckpt"),
                                         "--results_dir", str(tmp_path / "split" / "results")]))
    a = load_checkpoint(tmp_path / "straight" / "ckpt" / "checkpoint_epoch_2.pth", kinds=("diffusion",))
    b = load_checkpoint(tmp_path / "split" / "ckpt" / "checkpoint_epoch_2.pth", kinds=("diffusion",))
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), f"model.{key} differs after resume"
    assert all(torch.equal(x, y) for x, y in zip(a["ema"]["shadow_params"], b["ema"]["shadow_params"]))
    assert a["ema"]["optimization_step"] == b["ema"]["optimization_step"] == 4
    for key, value in a["optimizer"]["state"][0].items():
        assert torch.equal(value, b["optimizer"]["state"][0][key]), f"optimizer {key} differs"
    assert torch.equal(a["rng"]["torch"], b["rng"]["torch"])


def test_ctrl_c_saves_a_checkpoint(data, tmp_path, monkeypatch):
    interrupt_at_step(monkeypatch, diffusion)
    with pytest.raises(SystemExit) as exit_info:
        diffusion.main(train_args(data, tmp_path, "--epochs", "3"))
    assert exit_info.value.code == 130
    state = load_checkpoint(tmp_path / "ckpt" / "checkpoint_interrupted.pth", kinds=("diffusion",))
    assert state["epoch"] == 0 and state["step"] == 1


def test_max_minutes_stops_at_an_epoch_boundary_with_a_checkpoint(data, tmp_path, monkeypatch, capsys):
    minute_per_clock_read(monkeypatch)
    diffusion.main(train_args(data, tmp_path, "--epochs", "4", "--save_every", "10", "--max_minutes", "1"))
    assert sorted(p.name for p in (tmp_path / "ckpt").glob("checkpoint_*.pth")) == ["checkpoint_epoch_1.pth"]
    assert "stopped after epoch 1 of 4: --max_minutes 1 spent" in capsys.readouterr().out


def test_bad_input_errors(data, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    (tmp_path / "junk.pth").write_bytes(b"definitely not a checkpoint")
    gan_ckpt = save_checkpoint({"kind": "gan", "config": {}}, tmp_path / "gan.pth")
    diffusion.main(train_args(data, tmp_path, "--epochs", "1"))
    ckpt = tmp_path / "ckpt" / "checkpoint_epoch_1.pth"
    capsys.readouterr()  # drop the training output
    test_image = str(data / "test" / "img_100.png")
    cases = [
        (["--mode", "eval", "--checkpoint_path", str(tmp_path / "missing.pth")], "checkpoint not found"),
        (["--mode", "eval", "--checkpoint_path", str(tmp_path / "junk.pth")], "cannot read checkpoint"),
        (["--mode", "eval", "--checkpoint_path", str(gan_ckpt)], "is not a diffusion"),
        (["--mode", "train", "--checkpoint_path", str(gan_ckpt), "--epochs", "2"], "is not a diffusion checkpoint"),
        (["--mode", "eval", "--checkpoint_path", str(ckpt), "--test_dir", str(tmp_path / "empty")], "no images"),
        (["--mode", "eval", "--checkpoint_path", str(ckpt), "--scheduler", "ddpm", "--num_inference_steps", "2000"],
         "--num_inference_steps"),
        (["--mode", "train", "--train_dir", str(tmp_path / "empty")], "no images"),
        (["--mode", "train", "--crop_ratio", "0.6"], "--crop_ratio"),
        (["--mode", "train", "--image_size", "100"], "--image_size"),
        (["--mode", "train", "--channel_mult", "1,x"], "--channel_mult"),
        (["--mode", "train", "--image_size", "64", "--channel_mult", "1,1,1,1,1,1,1,1"], "--channel_mult"),
        (["--mode", "eval_2", "--checkpoint_path", str(ckpt), "--image1", test_image], "--image2"),
    ]
    for argv, message in cases:
        code = run(diffusion.main, diffusion.parse_args, argv)
        err = capsys.readouterr().err.strip()
        assert code == 2, argv
        assert err.startswith("error: ") and message in err and "\n" not in err, (argv, err[-600:])
    # ... and the other way round: main.py refuses a diffusion checkpoint.
    assert run(gan.main, gan.parse_args, ["--mode", "eval", "--checkpoint_path", str(ckpt)]) == 2
    assert "is not a gan, gan_generator or gan_generator_mean checkpoint (found kind='diffusion')" in capsys.readouterr().err


def test_cli_subprocess_exit_code_and_help(tmp_path, capsys):
    bad = subprocess.run([sys.executable, "diffusion.py", "--mode", "eval_2", "--image1", "a.jpg"],
                         cwd=ROOT, capture_output=True, text=True)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1
    assert bad.stderr.startswith("error: eval_2 needs two photos")  # the shipped baseline is the default model
    with pytest.raises(SystemExit):
        diffusion.parse_args(["--help"])
    help_text = capsys.readouterr().out
    assert "--num-inference-steps" in help_text and "--checkpoint-path" in help_text and "ddpm" in help_text


def test_compare_scores_every_method_with_the_same_code(data, tmp_path):
    """benchmarks/compare.py end to end; T = 10 training timesteps stand in for the document's 1000."""
    from benchmarks import compare
    assert compare.parse_runs("50,dpm:20,1000", 1000, "ddim") == [("ddim", 50), ("dpm", 20), ("ddpm", 1000)]
    gan.main(gan.parse_args(["--mode", "train", "--train_dir", str(data / "train"), "--test_dir", str(data / "test"),
                             "--checkpoint_dir", str(tmp_path / "g"), "--results_dir", str(tmp_path / "g"),
                             "--image_size", "64", "--ngf", "8", "--ndf", "8", "--batch_size", "2", "--epochs", "1",
                             "--export", str(tmp_path / "gan.pth")]))
    diffusion.main(train_args(data, tmp_path, "--epochs", "1", "--num_train_timesteps", "10"))
    out = tmp_path / "compare"
    compare.main(compare.parse_args(["--gan_checkpoint", str(tmp_path / "gan.pth"), "--diffusion_checkpoint",
                                     str(tmp_path / "ckpt" / "checkpoint_epoch_1.pth"), "--test_dir",
                                     str(data / "test"), "--out_dir", str(out), "--steps", "2,10",
                                     "--timing_steps", "1"]))
    with open(out / "comparison.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["method"] for r in rows] == ["mean colour (64px)", "Telea inpainting (64px)", "harmonic fill (64px)",
                                           "OpenCV shift-map (exemplar-based) (64px)", "OpenCV FSR (64px)",
                                           "GAN (64px)", "diffusion ddim 2 steps (64px)",
                                           "diffusion ddpm 10 steps (64px)"]
    assert all(float(r["psnr_hole"]) > 0 and float(r["seconds_per_image"]) >= 0 for r in rows)
    assert all(float(r["swd"]) > 0 and float(r["psnr_lowpass"]) > float(r["psnr_hole"]) - 1 for r in rows)
    assert float(rows[5]["train_images_per_s"]) > 0 and float(rows[6]["params_M"]) > 0
    for row, folder in zip(rows, ("mean_64", "telea_64", "harmonic_64", "shiftmap_64", "fsr_64", "gan",
                                  "diffusion_ddim_2", "diffusion_ddpm_10")):
        with open(out / folder / "metrics.csv") as f:  # every method went through evaluate_folder
            assert len(list(csv.DictReader(f))) == 2
    table = (out / "comparison.md").read_text()
    assert "**Check:** diffusion ddim 2 steps (64px) vs diffusion ddpm 10 steps (64px)" in table
    assert "Hardware:" in table and "--steps 2,10" in table and (out / "comparison.png").stat().st_size > 0


def test_eval_2_defaults_to_the_shipped_baseline(data, tmp_path):
    out = tmp_path / "fill.png"
    diffusion.main(diffusion.parse_args(["--mode", "eval_2", "--image1", str(data / "test" / "img_100.png"),
                                         "--image2", str(data / "test" / "img_101.png"),
                                         "--num_inference_steps", "2", "--output", str(out)]))
    assert Image.open(out).size == (70, 70)  # the smaller photo side; nothing trained, nothing passed

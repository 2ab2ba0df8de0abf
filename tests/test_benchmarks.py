"""The reference trainer of benchmarks/bench_train.py --whole_process trains main.py's recipe."""
import copy

import pytest
import torch

import main as gan
from benchmarks.reference_train import parse_args as reference_args
from benchmarks.reference_train import main as reference_main
from benchmarks.reference_train import straightforward_step
from data.masks import masked_input
from losses import AdversarialLoss
from models import PatchDiscriminator
from utils.loading import build_generator
from utils.training import make_accelerator, run_config


def test_straightforward_step_computes_main_train_steps_loss():
    """With lr 0 (D unchanged by its step), both implementations must give the same generator loss."""
    recipe = gan.parse_args(["--mode", "train", "--image_size", "64", "--ngf", "8", "--ndf", "8", "--batch_size", "2",
                             "--perceptual", "none", "--lr", "0", "--mixed_precision", "no", "--cpu"])
    torch.manual_seed(0)
    generator, discriminator = build_generator(run_config(recipe)), PatchDiscriminator(ndf=8)
    image = torch.rand(2, 3, 64, 64) * 2 - 1
    _, mask = masked_input(image, 0.4)
    batch = {"image": image, "mask": mask}
    losses = []
    for step in ("main", "reference"):
        g, d = copy.deepcopy(generator), copy.deepcopy(discriminator)
        opt_g, opt_d = torch.optim.Adam(g.parameters(), lr=0.0), torch.optim.Adam(d.parameters(), lr=0.0)
        if step == "main":
            accelerator = make_accelerator(recipe.mixed_precision, recipe.cpu)
            losses.append(gan.train_step(batch, g, d, opt_g, opt_d, AdversarialLoss("bce"), None, recipe,
                                         accelerator)["G_total"])
        else:
            losses.append(straightforward_step(batch, g, d, opt_g, opt_d, AdversarialLoss("bce"), None, recipe))
    assert abs(losses[0] - losses[1]) < 1e-4 * abs(losses[0]), losses


def test_reference_trainer_runs_main_defaults_and_writes_a_checkpoint(data, tmp_path):
    args = reference_args(["--train_dir", str(data / "train"), "--image_size", "64", "--ngf", "8", "--ndf", "8",
                           "--batch_size", "2", "--perceptual", "none", "--epochs", "1", "--out", str(tmp_path)])
    assert args.norm == gan.parse_args(["--mode", "train"]).norm  # main.py's defaults
    reference_main(args)
    state = torch.load(tmp_path / "checkpoint_epoch_1.pth", weights_only=True)
    assert state["epoch"] == 1 and state["config"]["ngf"] == 8
    assert (tmp_path / "samples_1.png").is_file() and (tmp_path / "loss_curve.png").is_file()


def test_compare_times_the_shipped_gans_recipe():
    """compare.py rebuilds the training recipe from a checkpoint's config: the shipped one (texture head,
    low-pass losses, squared error) and one from before those flags must both train a step."""
    from benchmarks.compare import gan_training_rate
    from utils.loading import SHIPPED_MODEL
    from utils.checkpoint import load_checkpoint
    config = {**load_checkpoint(SHIPPED_MODEL, kinds=("gan_generator",))["config"], "image_size": 64, "batch_size": 2,
              "ngf": 8, "ndf": 8, "perceptual_loss": False}
    assert config["texture_noise"] and config["recon_lowpass"] and config["lambda_detail"]
    accelerator = make_accelerator("no", cpu=True)
    assert gan_training_rate(config, accelerator, steps=1) > 0
    older = {k: v for k, v in config.items() if k not in ("texture_noise", "recon_lowpass", "lambda_mse",
                                                           "detail_variant", "lambda_detail")}
    assert gan_training_rate(older, accelerator, steps=1) > 0


def test_score_prints_a_row_per_fill_and_the_truths_own_shares(data, tmp_path, capsys):
    from benchmarks.score import COLUMNS, main as score_main, parse_args as score_args
    from models import GeneratorConfig, UNetGenerator
    from utils.loading import export_generator
    torch.manual_seed(0)
    path = export_generator(UNetGenerator(GeneratorConfig(64, 8)), {"image_size": 64, "crop_ratio": 0.4},
                            tmp_path / "g.pth")
    score_main(score_args(["--test_dir", str(data / "test"), "--checkpoint", f"tiny={path}", "--floors",
                           "harmonic,mean", "--out_dir", str(tmp_path / "score")]))
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("|")]
    assert [line.split("|")[1].strip() for line in lines[2:]] == [
        "tiny", "harmonic fill", "mean fill", "the truth (against itself: the patch SWD floor)"]
    assert all(line.count("|") == len(COLUMNS) + 2 for line in lines)
    titles = [title for _, title, _ in COLUMNS]
    truth = dict(zip(titles, (cell.strip() for cell in lines[-1].split("|")[2:-1])))
    mean = dict(zip(titles, (cell.strip() for cell in lines[-2].split("|")[2:-1])))
    assert 0 < float(truth["chroma share"]) < 2 / 3 and 0 < float(truth["stripe share"]) < 1
    assert float(mean["chroma share"]) == 0  # a flat fill has no detail, of any colour
    assert (tmp_path / "score" / "score.md").read_text().startswith(lines[0])


def test_probe_stripes_labels_its_rows_and_adds_a_noise_free_copy(data, tmp_path, capsys):
    from benchmarks.probe_stripes import main as probe_main, parse_args as probe_args
    from models import GeneratorConfig, UNetGenerator
    from utils.loading import export_generator
    torch.manual_seed(0)
    generator = UNetGenerator(GeneratorConfig(64, 8, noise_injection=1))
    with torch.no_grad():
        for strength in generator.noise_strength.values():
            strength.fill_(0.5)
    path = export_generator(generator, {"image_size": 64, "crop_ratio": 0.4}, tmp_path / "g.pth")
    probe_main(probe_args(["--test_dir", str(data / "test"), "--image_size", "64", "--floors", "harmonic",
                           "--checkpoint", f"noisy=label={path}", "--checkpoint", str(path)]))
    out = capsys.readouterr().out
    rows = {line.split("|")[1].strip(): line for line in out.splitlines()
            if line.startswith("| ") and not line.startswith("| method")}
    assert {"the truth", "harmonic", "noisy=label", "noisy=label, noise strengths set to 0", "g"} <= set(rows)
    assert all(0 <= float(rows[name].split("|")[2]) <= 1 for name in rows)  # stripe shares
    assert "noisy=label: noise strengths |s| mean 0.5000, max 0.5000" in out  # the last "=" splits label and path


def test_probe_block_grid_scores_a_generator_and_its_bilinear_copy(data, tmp_path, capsys):
    from benchmarks.probe_block_grid import main as probe_main, parse_args as probe_args
    from models import GeneratorConfig, UNetGenerator
    from utils.loading import export_generator
    torch.manual_seed(0)
    generator = UNetGenerator(GeneratorConfig(64, 8, upsampling="resize"))
    with torch.no_grad():  # away from the no-op start, so that the decoder draws something
        for p in generator.parameters():
            p.add_(0.05 * torch.randn_like(p))
    path = export_generator(generator, {"image_size": 64, "crop_ratio": 0.4}, tmp_path / "g.pth")
    probe_main(probe_args(["--test_dir", str(data / "test"), "--image_size", "64", "--floors", "harmonic",
                           "--checkpoint", f"blocks={path}", "--upsampling", "bilinear", "--period", "4"]))
    rows = {line.split("|")[1].strip(): line.split("|")[2:-1] for line in capsys.readouterr().out.splitlines()
            if line.startswith("| ") and not line.startswith("| method")}
    assert set(rows) == {"the truth", "harmonic", "blocks", "blocks, bilinear upsampling (untrained)"}
    for contrast, shares in rows.values():
        assert float(contrast) >= 0 and len(shares.split()) == 4  # a share per position mod 4 ...
        assert sum(float(v) for v in shares.split()) == pytest.approx(4, abs=0.02)  # ... of the mean
    assert float(rows["blocks, bilinear upsampling (untrained)"][0]) != float(rows["blocks"][0])


def test_checkpoint_spec_reads_raw_and_label_prefixes():
    from utils.cli import checkpoint_spec
    assert checkpoint_spec("runs/a/ck_4.pth") == ("ck_4", "runs/a/ck_4.pth", True)
    assert checkpoint_spec("raw:runs/a/ck_4.pth") == ("ck_4 (raw weights)", "runs/a/ck_4.pth", False)
    assert checkpoint_spec("raw:run a=x=runs/a/ck_4.pth") == ("run a=x", "runs/a/ck_4.pth", False)
    assert checkpoint_spec("raw:runs/a/ck_4.pth", default_prefix="GAN ").label == "GAN ck_4 (raw weights)"
    assert checkpoint_spec("a=runs/a/ck_4.pth", default_prefix="GAN ").label == "a"


def test_probes_score_a_training_checkpoints_raw_weights_apart_from_its_ema(data, tmp_path, capsys):
    """"raw:PATH" loads the checkpoint's raw generator, PATH its EMA copy: here two different networks."""
    from benchmarks.probe_block_grid import main as probe_main, parse_args as probe_args
    from models import GeneratorConfig, UNetGenerator
    from utils.checkpoint import save_checkpoint
    from utils.loading import model_args
    torch.manual_seed(0)
    raw, ema = (UNetGenerator(GeneratorConfig(64, 8)) for _ in range(2))
    with torch.no_grad():
        for p in raw.parameters():  # away from the no-op start: the raw fill draws something, the EMA's does not
            p.add_(0.05 * torch.randn_like(p))
    path = save_checkpoint({"kind": "gan", "config": {"image_size": 64, "crop_ratio": 0.4},
                            "model_args": model_args(raw), "generator": raw.state_dict(),
                            "generator_ema": {"module": ema.state_dict()}}, tmp_path / "checkpoint_epoch_1.pth")
    probe_main(probe_args(["--test_dir", str(data / "test"), "--image_size", "64", "--floors", "",
                           "--checkpoint", str(path), "--checkpoint", f"raw:{path}"]))
    rows = {line.split("|")[1].strip(): float(line.split("|")[2]) for line in capsys.readouterr().out.splitlines()
            if line.startswith("| ") and not line.startswith("| method")}
    assert set(rows) == {"the truth", "checkpoint_epoch_1", "checkpoint_epoch_1 (raw weights)"}
    assert rows["checkpoint_epoch_1"] != rows["checkpoint_epoch_1 (raw weights)"]


def test_bench_recipe_step_times_each_batch_size_of_a_recipe(capsys):
    from benchmarks import bench_recipe_step
    from utils.cli import run
    assert run(bench_recipe_step.main, bench_recipe_step.parse_args,
               ["--config", "configs/realistic_256.yaml", "--image_size", "64", "--cpu", "--threads", "1",
                "--batch_sizes", "1,2", "--steps", "1", "--warmup", "0", "--profile", "--", "--ngf", "8",
                "--ndf", "8", "--mixed_precision", "no"]) == 0
    out = capsys.readouterr().out
    assert "realistic_256.yaml --ngf 8 --ndf 8 --mixed_precision no: 64²" in out
    assert "batch    1:" in out and "batch    2:" in out and "images/s" in out
    calls = [int(line.split()[3]) for line in out.splitlines() if line.startswith("in the step:")]
    assert len(calls) == 2 and min(calls) > 100  # a GAN step of two networks and four losses is many operators
    assert run(bench_recipe_step.main, bench_recipe_step.parse_args,
               ["--config", "configs/nonexistent.yaml"]) == 2
    assert "--config configs/nonexistent.yaml not found" in capsys.readouterr().err


def test_probe_memorisation_scores_the_truth_floors_and_generators(data, tmp_path, capsys):
    from benchmarks.probe_memorisation import main as probe_main, parse_args as probe_args
    from models import GeneratorConfig, UNetGenerator
    from utils.loading import export_generator
    from utils.cli import run
    torch.manual_seed(0)
    path = export_generator(UNetGenerator(GeneratorConfig(64, 8)), {"image_size": 64, "crop_ratio": 0.4},
                            tmp_path / "g.pth")
    argv = ["--train_dir", str(data / "train"), "--test_dir", str(data / "test"), "--image_size", "64",
            "--floors", "harmonic", "--checkpoint", f"tiny={path}", "--query_stride", "6", "--draws", "2"]
    probe_main(probe_args(argv))
    rows = {line.split("|")[1].strip(): line.split("|")[2:-1] for line in capsys.readouterr().out.splitlines()
            if line.startswith("| ") and not line.startswith("| method")}
    assert list(rows) == ["the truth", "harmonic", "tiny"]
    for share, to_train, to_unseen in rows.values():
        assert 0 <= float(share.split("±")[0]) <= 1 and float(to_train) >= 0 and float(to_unseen) >= 0
    assert run(probe_main, probe_args, argv[:-4] + ["--query_stride", "8"]) == 2
    assert "--query_stride" in capsys.readouterr().err


def test_probe_band_budget_splits_a_fills_detail_by_band_and_prices_it_in_layout(data, tmp_path, capsys):
    from benchmarks.probe_band_budget import (amplitude_and_correlation, band_sizes, band_sums, main as probe_main,
                                              parse_args as probe_args)
    from models import GeneratorConfig, UNetGenerator
    from models.baselines import BASELINES
    from utils.loading import export_generator
    from utils.cli import run
    from utils.evaluation import evaluate_folder
    assert band_sizes(128) == [128, 64, 32, 16] and band_sizes(64) == [64, 32, 16]
    from models.filters import laplacian_pyramid
    truth = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0)) * 2 - 1
    mask, truths = masked_input(truth, 0.4)[1], laplacian_pyramid(truth)
    same = amplitude_and_correlation(band_sums(truths, truths, mask))
    assert all(abs(a - 1) < 1e-6 and abs(c - 1) < 1e-6 for a, c in same), same
    negated = amplitude_and_correlation(band_sums(laplacian_pyramid(-truth), truths, mask))[:-1]  # bands flip sign
    assert all(abs(a - 1) < 1e-6 and abs(c + 1) < 1e-6 for a, c in negated), negated
    flat = amplitude_and_correlation(band_sums(laplacian_pyramid(torch.zeros_like(truth)), truths, mask))
    assert all(a == 0 and c == 0 for a, c in flat[:-1])  # no detail in any band

    torch.manual_seed(0)
    path = export_generator(UNetGenerator(GeneratorConfig(64, 8)), {"image_size": 64, "crop_ratio": 0.4},
                            tmp_path / "g.pth")
    probe_main(probe_args(["--test_dir", str(data / "test"), "--checkpoint", f"tiny={path}", "--floors", "mean",
                           "--hand_made"]))
    lines = [line.split("|")[1:-1] for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]
    bands, lowpass = lines[:4], lines[4:]
    assert [c.strip() for c in bands[0]] == ["fill", "64 px: amplitude / correlation",
                                             "32 px: amplitude / correlation", "16 px (low-pass): amplitude / correlation"]
    assert [c.strip() for c in lowpass[0]] == ["fill (low-pass hole PSNR, dB)", "as it is", "without 64 px",
                                               "without 32 px", "without both"]
    fills = ["tiny", "mean fill", "hand-made: tiny's 16-px level + shift-map's bands"]
    assert [cells[0].strip() for cells in bands[1:]] == fills == [cells[0].strip() for cells in lowpass[1:]]
    decibels = {cells[0].strip(): [float(c) for c in cells[1:]] for cells in lowpass[1:]}
    # Its "as it is" column is eval's low-pass hole PSNR of the same fill on the same photos.
    summary = evaluate_folder(BASELINES["mean"], data / "test", 64, 0.4, tmp_path / "eval", "cpu", save_images=False)
    assert decibels["mean fill"][0] == pytest.approx(summary["psnr_lowpass"], abs=0.006)
    assert all(v > 0 for v in decibels["tiny"])
    assert run(probe_main, probe_args, ["--test_dir", str(data / "test"), "--hand_made"]) == 2
    assert "--hand_made needs a --checkpoint" in capsys.readouterr().err

"""--config FILE: recipes as files (configs/*.yaml), flags overriding them."""
from pathlib import Path

import pytest

import main as gan
from utils.cli import given_flags, run

ROOT = Path(__file__).resolve().parents[1]


def namespace(args) -> dict:
    return {k: v for k, v in vars(args).items() if k not in ("config", "_given", "_config_keys")}


def test_every_shipped_config_parses_to_its_values_and_flags_override(tmp_path):
    for path in sorted((ROOT / "configs").glob("*.yaml")):
        args = gan.parse_args(["--mode", "train", "--config", str(path)])
        assert args.config == str(path) and given_flags(args) == {"mode", "config"}  # config values are defaults
        overridden = gan.parse_args(["--mode", "train", "--config", str(path), "--epochs", "3", "--lr", "1e-3"])
        assert (overridden.epochs, overridden.lr) == (3, 1e-3)
        assert {k: v for k, v in namespace(overridden).items() if k not in ("epochs", "lr")} == \
            {k: v for k, v in namespace(args).items() if k not in ("epochs", "lr")}


def test_a_config_is_the_same_as_its_flags(tmp_path):
    config = tmp_path / "recipe.yaml"
    config.write_text("lambda_l1: 30\nperceptual: effnet_deep\nharmonic_start: false\ntexture_noise: 0\n"
                      "adam_betas: '0,0.99'\nlr_decay_start: 4\n")
    from_file = gan.parse_args(["--mode", "train", "--config", str(config)])
    from_flags = gan.parse_args(["--mode", "train", "--lambda_l1", "30", "--perceptual", "effnet_deep",
                                 "--no-harmonic_start", "--texture_noise", "0", "--adam_betas", "0,0.99",
                                 "--lr_decay_start", "4"])
    assert namespace(from_file) == namespace(from_flags)


@pytest.mark.parametrize("text, message", [
    ("lamda_l1: 30\n", "unknown key(s) lamda_l1"),
    ("perceptual: alexnet\n", "perceptual must be one of"),
    ("- a list\n", "expected `flag: value` lines"),
    ("lambda_l1: [1\n", "not valid YAML"),
    ("", "is empty"),
])
def test_bad_configs_are_one_line_errors_naming_the_file(tmp_path, capsys, text, message):
    config = tmp_path / "bad.yaml"
    config.write_text(text)
    assert run(gan.main, gan.parse_args, ["--mode", "train", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert message in err and str(config) in err and len(err.strip().splitlines()) == 1


def test_a_config_builds_on_its_base_and_overrides_it(tmp_path):
    (tmp_path / "recipes").mkdir()
    (tmp_path / "recipes" / "root.yaml").write_text("lambda_l1: 30\nepochs: 7\nlr_decay_start: 4\n")
    (tmp_path / "recipes" / "stage.yaml").write_text("base: root.yaml\nepochs: 9\nlr_decay_start: null\n")
    (tmp_path / "fork.yaml").write_text("base: recipes/stage.yaml\nlambda_ssim: 2\n")  # relative to its own folder
    from_file = gan.parse_args(["--mode", "train", "--config", str(tmp_path / "fork.yaml")])
    from_flags = gan.parse_args(["--mode", "train", "--lambda_l1", "30", "--epochs", "9", "--lambda_ssim", "2"])
    assert namespace(from_file) == namespace(from_flags) and from_file.lr_decay_start is None
    assert given_flags(from_file) == {"mode", "config"}  # a base's values are defaults too: flags still win
    assert gan.parse_args(["--mode", "train", "--config", str(tmp_path / "fork.yaml"), "--epochs", "2"]).epochs == 2


@pytest.mark.parametrize("files, message", [
    ({"a.yaml": "base: gone.yaml\n"}, "base: file not found"),
    ({"a.yaml": "base: b.yaml\n", "b.yaml": "base: a.yaml\n"}, "is already in the chain"),
])
def test_a_broken_base_is_a_one_line_error_naming_the_file(tmp_path, capsys, files, message):
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    assert run(gan.main, gan.parse_args, ["--mode", "train", "--config", str(tmp_path / "a.yaml")]) == 2
    err = capsys.readouterr().err
    assert message in err and str(tmp_path / "a.yaml") in err and len(err.strip().splitlines()) == 1


def test_a_missing_config_names_the_folder_of_recipes(capsys):
    assert run(gan.main, gan.parse_args, ["--mode", "train", "--config", "nope.yaml"]) == 2
    assert "configs/" in capsys.readouterr().err


def test_a_folder_as_config_is_refused_by_name(tmp_path, capsys):
    assert run(gan.main, gan.parse_args, ["--mode", "train", "--config", str(tmp_path)]) == 2
    assert f"--config {tmp_path} is a folder" in capsys.readouterr().err


def test_in_eval_a_config_acts_through_its_eval_keys_and_a_training_recipe_is_refused(tmp_path, capsys):
    (tmp_path / "eval.yaml").write_text("crop_ratio: 0.3\n")
    args = gan.parse_args(["--mode", "eval", "--config", str(tmp_path / "eval.yaml")])
    from utils.cli import check_shared_args
    check_shared_args(gan.Parser(), args, eval_flags={"baseline"})  # accepted: crop_ratio acts in eval,
    assert args.crop_ratio == 0.3 and "crop_ratio" in given_flags(args)  # over the checkpoint's, as if given
    (tmp_path / "threads.yaml").write_text("threads: 1\n")  # YAML reads a number
    args = gan.parse_args(["--mode", "train", "--config", str(tmp_path / "threads.yaml")])
    check_shared_args(gan.Parser(), args)
    assert args.threads == "1"
    assert run(gan.main, gan.parse_args, ["--mode", "eval", "--config", str(ROOT / "configs/quickstart.yaml")]) == 2
    assert "sets epochs, ngf, repeat, which do nothing in --mode eval" in capsys.readouterr().err


def model_card_commands() -> list:
    """The six stage commands as the model card printed them before the recipes became files (the defaults
    of that time: no texture head unless asked for)."""
    import re
    text = (ROOT / "tests" / "data" / "shipped_stage_commands.txt").read_text()
    return [c.split()[2:] + ([] if "--texture_noise" in c else ["--texture_noise", "0"])
            for c in re.sub(r"\\\n\s*", " ", text).splitlines() if c.startswith("python main.py")]


def test_the_shipped_stage_configs_are_the_model_cards_commands():
    commands = model_card_commands()
    assert len(commands) == 6
    for stage, argv in enumerate(commands, 1):
        from_file = gan.parse_args(["--mode", "train", "--config", str(ROOT / f"configs/shipped_stage{stage}.yaml")])
        assert namespace(from_file) == namespace(gan.parse_args(argv)), f"stage {stage}"


def test_stage_one_from_its_config_takes_the_same_first_step_as_the_long_command(data):
    import torch
    from losses import AdversarialLoss
    from utils.training import make_accelerator
    small = ["--train_dir", str(data / "train"), "--image_size", "64", "--ngf", "8", "--ndf", "8", "--batch_size", "2",
             "--perceptual", "none", "--mixed_precision", "no"]  # a CPU-sized version of both
    recipes = [gan.parse_args(["--mode", "train", "--config", str(ROOT / "configs/shipped_stage1.yaml"), *small]),
               gan.parse_args(model_card_commands()[0] + small)]
    image = torch.rand(2, 3, 64, 64) * 2 - 1
    from data.masks import masked_input
    batch = {"image": image, "mask": masked_input(image, 0.4)[1]}
    losses = []
    for recipe in recipes:
        torch.manual_seed(0)
        g, d = gan.build_training_networks(vars(recipe))
        opt_g, opt_d = (torch.optim.Adam(m.parameters(), lr=recipe.lr, betas=(0.5, 0.999)) for m in (g, d))
        losses.append(gan.train_step(batch, g, d, opt_g, opt_d, AdversarialLoss(recipe.gan_loss), None, recipe,
                                     make_accelerator("no", cpu=True), adversarial_on=True))
    assert losses[0] == losses[1] and losses[0]["G_L1"] > 0


def test_context_recipe_is_the_realistic_256_recipe_at_128_with_context_and_deep_heads():
    """configs/context_128.yaml is the command line runs 34 and 36 were trained with (docs/realistic_fills.md)."""
    from_file = gan.parse_args(["--mode", "train", "--config", str(ROOT / "configs/context_128.yaml")])
    from_flags = gan.parse_args(["--mode", "train", "--config", str(ROOT / "configs/realistic_256.yaml"),
                                 "--image_size", "128", "--d_upsample", "2", "--context_features",
                                 "--d_head_layers", "3", "--epochs", "400", "--checkpoint_dir", "runs/context_128",
                                 "--results_dir", "runs/context_128"])
    assert namespace(from_file) == namespace(from_flags)


@pytest.mark.parametrize("stage, flags", [
    ("layout", ["--init_from", "runs/context_128/checkpoint_epoch_56.pth", "--lambda_layout", "500"]),
    ("placement", ["--init_from", "runs/context_128_layout/checkpoint_epoch_24.pth", "--lambda_layout", "500",
                   "--lambda_placement", "30"])])
def test_the_realistic_chain_configs_are_the_forks_command_lines(stage, flags):
    """configs/context_128_{layout,placement}.yaml are the command lines of runs 40 and 42 (docs/realistic_fills.md):
    configs/context_128.yaml and the fork's flags."""
    from_file = gan.parse_args(["--mode", "train", "--config", str(ROOT / f"configs/context_128_{stage}.yaml")])
    from_flags = gan.parse_args(["--mode", "train", "--config", str(ROOT / "configs/context_128.yaml"), *flags,
                                 "--checkpoint_dir", f"runs/context_128_{stage}",
                                 "--results_dir", f"runs/context_128_{stage}"])
    assert namespace(from_file) == namespace(from_flags)

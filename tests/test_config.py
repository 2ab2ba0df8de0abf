"""--config FILE: recipes as files (configs/*.yaml), flags overriding them."""
from pathlib import Path

import pytest

import main as gan
from utils.cli import given_flags, run

ROOT = Path(__file__).resolve().parents[1]


def namespace(args) -> dict:
    return {k: v for k, v in vars(args).items() if k not in ("config", "_given")}


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
    config.write_text("lambda_l1: 30\nperceptual: effnet_deep\nharmonic_start: false\nadam_betas: '0,0.99'\n"
                      "lr_decay_start: 4\n")
    from_file = gan.parse_args(["--mode", "train", "--config", str(config)])
    from_flags = gan.parse_args(["--mode", "train", "--lambda_l1", "30", "--perceptual", "effnet_deep",
                                 "--no-harmonic_start", "--adam_betas", "0,0.99", "--lr_decay_start", "4"])
    assert namespace(from_file) == namespace(from_flags)


@pytest.mark.parametrize("text, message", [
    ("lamda_l1: 30\n", "unknown key(s) lamda_l1"),
    ("perceptual: alexnet\n", "perceptual must be one of"),
    ("- a list\n", "expected `flag: value` lines"),
    ("lambda_l1: [1\n", "not valid YAML"),
])
def test_bad_configs_are_one_line_errors_naming_the_file(tmp_path, capsys, text, message):
    config = tmp_path / "bad.yaml"
    config.write_text(text)
    assert run(gan.main, gan.parse_args, ["--mode", "train", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert message in err and str(config) in err and len(err.strip().splitlines()) == 1


def test_a_missing_config_names_the_folder_of_recipes(capsys):
    assert run(gan.main, gan.parse_args, ["--mode", "train", "--config", "nope.yaml"]) == 2
    assert "configs/" in capsys.readouterr().err

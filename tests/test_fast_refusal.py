"""Bad flags, values and input files are refused before torch is imported: one line, exit 2, fast and small."""
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from models.baselines import BASELINES
from models.options import AUGMENTATIONS, BASELINE_NAMES, BETA_SCHEDULES, GAN_LOSSES, PERCEPTUAL_KINDS, SAMPLERS
from tests.test_image_limits import png_header

ROOT = Path(__file__).resolve().parents[1]
PHOTO = ROOT / "data/scenery/test/mate_yellow_flower.jpg"

# Runs a command and prints its peak memory (KiB; ru_maxrss of this wrapper's only child) on the last line.
PEAK_RSS = ("import resource, subprocess, sys; result = subprocess.run(sys.argv[1:]); "
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(result.returncode)")


def refuse(script: str, *argv, tmp_path) -> tuple:
    """(stderr, peak RSS in MiB, whether torch was imported) of `python -X importtime script argv`."""
    command = [sys.executable, "-c", PEAK_RSS, sys.executable, "-X", "importtime", str(ROOT / script), *argv]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    imports = [line for line in result.stderr.splitlines() if line.startswith("import time:")]
    messages = [line for line in result.stderr.splitlines() if not line.startswith("import time:")]
    assert result.returncode == 2, result.stderr[-2000:]
    torch_imported = any(line.rsplit("|", 1)[-1].strip() == "torch" for line in imports)
    return messages, int(result.stdout.split()[-1]) / 1024, torch_imported


@pytest.mark.parametrize("script", ["main.py", "diffusion.py"])
@pytest.mark.parametrize("case, message", [
    ("bomb", "over the 40-megapixel limit"),
    ("tiny", "1x1: too small to take a square from (16 px at least)"),
    ("missing", "image not found: missing.jpg"),
    ("crop_ratio", "--crop_ratio must be in (0, 0.5]"),
    ("init_from", "checkpoint not found: nothere.pth (check --init_from)"),
    ("output", "--output /proc/x: cannot write in /proc"),
    ("checkpoint_dir", "--checkpoint_dir /proc/x: cannot write in /proc"),
])
def test_bad_input_is_refused_in_one_line_without_importing_torch(tmp_path, script, case, message):
    png_header(tmp_path / "bomb.png", 20000, 20000)
    Image.new("RGB", (1, 1)).save(tmp_path / "tiny.png")
    argv = {"bomb": ["--image1", "bomb.png", "--image2", str(PHOTO)],
            "tiny": ["--image1", str(PHOTO), "--image2", "tiny.png"],
            "missing": ["--image1", "missing.jpg", "--image2", str(PHOTO)],
            "crop_ratio": ["--mode", "eval", "--crop_ratio", "0.7"],
            "init_from": ["--mode", "train", "--init_from", "nothere.pth"],
            "output": ["--image1", str(PHOTO), "--image2", str(PHOTO), "--output", "/proc/x/fill.png"],
            "checkpoint_dir": ["--mode", "train", "--checkpoint_dir", "/proc/x"]}[case]
    if case == "init_from" and script == "diffusion.py":
        argv = ["--mode", "train", "--checkpoint_path", "nothere.pth"]
        message = "checkpoint not found: nothere.pth (check --checkpoint_path)"
    messages, peak_mib, torch_imported = refuse(script, *argv, tmp_path=tmp_path)
    assert len(messages) == 1 and messages[0].startswith("error: ") and message in messages[0], messages
    assert not torch_imported
    assert peak_mib < 300, f"{peak_mib:.0f} MiB to refuse bad input"


def test_the_parsers_need_no_torch():
    """The modules the command lines' checks use import neither torch nor OpenCV (each costs seconds)."""
    code = ("import sys, data.images, data.masks, models.options, utils.cli; "
            "heavy = sorted({'torch', 'cv2', 'diffusers'} & set(sys.modules)); print(heavy); sys.exit(bool(heavy))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_choice_names_are_those_the_modules_implement():
    """models/options.py lists what the command lines offer; each name must be one its module knows."""
    import losses
    from models.diffusion import make_noise_scheduler, make_sampler, scheduler_config
    from models.projected import diff_augment
    import torch

    assert tuple(BASELINES) == BASELINE_NAMES
    assert tuple(losses.AdversarialLoss.MODES) == GAN_LOSSES
    for mode in GAN_LOSSES:
        losses.AdversarialLoss(mode)
    assert losses.build_perceptual_loss("none", None)[0] is None and "none" in PERCEPTUAL_KINDS
    image, mask = torch.zeros(1, 3, 16, 16), torch.zeros(1, 1, 16, 16)
    for policy in AUGMENTATIONS:
        diff_augment(image, mask, (policy,))
    for schedule in BETA_SCHEDULES:
        config = scheduler_config(make_noise_scheduler(1000, schedule))
        for name in SAMPLERS:
            make_sampler(name, config)


def test_an_exemplar_learning_rate_without_the_layer_is_refused_before_torch(tmp_path):
    messages, _, torch_imported = refuse("main.py", "--mode", "train", "--lr_exemplar", "1e-3", tmp_path=tmp_path)
    assert len(messages) == 1 and "--lr_exemplar" in messages[0] and "--exemplar_texture" in messages[0]
    assert not torch_imported


@pytest.mark.parametrize("flags, message", [
    (["--exemplar_normalise"], "need exemplar=True (--exemplar_texture)"),
    (["--exemplar_coarse", "--exemplar_prior"], "need exemplar=True (--exemplar_texture)"),
    (["--no-harmonic_start", "--texture_noise", "0", "--exemplar_texture"], "it needs harmonic=True"),
])
def test_generator_flags_that_cannot_build_a_network_are_refused_before_torch(tmp_path, flags, message):
    messages, _, torch_imported = refuse("main.py", "--mode", "train", *flags, tmp_path=tmp_path)
    assert len(messages) == 1 and messages[0].startswith("error: generator flags:") and message in messages[0]
    assert not torch_imported


def test_an_output_folder_is_checked_without_being_made(tmp_path):
    from utils.errors import InputError
    from utils.files import check_writable_folder
    check_writable_folder(tmp_path / "new" / "deeper", "--results_dir")
    assert list(tmp_path.iterdir()) == []  # nothing made, no test folder left
    (tmp_path / "a_file").write_text("")
    with pytest.raises(InputError, match="--results_dir .*a_file is not a folder"):
        check_writable_folder(tmp_path / "a_file" / "results", "--results_dir")
    (tmp_path / "broken").symlink_to(tmp_path / "gone")
    with pytest.raises(InputError, match="broken is not a folder"):
        check_writable_folder(tmp_path / "broken", "--results_dir")


@pytest.mark.parametrize("argv, message", [
    (["--host", "999.1.1.1"], "--host 999.1.1.1: not an address of this machine"),
    (["--checkpoint_path", "nothere.pth"], "checkpoint not found: nothere.pth"),
    (["--port", "0"], "--port must be in 1..65535"),
])
def test_the_web_page_refuses_bad_flags_before_importing_gradio_or_torch(tmp_path, argv, message):
    messages, _, torch_imported = refuse("app.py", *argv, tmp_path=tmp_path)
    assert len(messages) == 1 and messages[0].startswith("error: ") and message in messages[0], messages
    assert not torch_imported


def test_a_resumed_run_is_not_refused_for_default_folders_it_will_not_use():
    """Resuming without --checkpoint_dir / --results_dir writes where the checkpoint's run did (start_run), so the
    defaults are not checked; given, they are."""
    import main as gan
    from utils.cli import check_input_files
    from utils.errors import InputError
    checkpoint = str(ROOT / "checkpoints/gan_scenery_128.pth")  # any existing file: only the path is checked here
    args = gan.parse_args(["--mode", "train", "--checkpoint_path", checkpoint])
    args.checkpoint_dir = args.results_dir = "/proc/x"  # as if the defaults could not be written
    check_input_files(args)
    args = gan.parse_args(["--mode", "train", "--checkpoint_path", checkpoint, "--checkpoint_dir", "/proc/x"])
    with pytest.raises(InputError, match="--checkpoint_dir /proc/x: cannot write"):
        check_input_files(args)


@pytest.mark.parametrize("argv, message", [
    (["--test_dir", "nowhere"], "--test_dir nowhere: no such folder (data/scenery_large is built by"),
    (["--test_dir", str(ROOT / "data/scenery/test"), "--floors", "harmonic,blur"], "--floors: unknown blur"),
    (["--test_dir", str(ROOT / "data/scenery/test"), "--checkpoint", "nothere.pth"], "checkpoint not found"),
])
def test_the_scoring_benchmark_refuses_bad_input_before_importing_torch(tmp_path, argv, message):
    messages, _, torch_imported = refuse("benchmarks/score.py", *argv, tmp_path=tmp_path)
    assert len(messages) == 1 and messages[0].startswith("error: ") and message in messages[0], messages
    assert not torch_imported


def test_help_names_each_default_once():
    from utils.cli import Parser
    parser = Parser(prog="x")
    parser.add_argument("--epochs", type=int, default=30, help="train until this epoch")
    parser.add_argument("--out", default="results", help="where it goes (default: the run's folder)")
    parser.add_argument("--limit", type=float, default=None, help="stop after this many minutes")
    parser.add_argument("--flag", action="store_true", help="a switch")
    text = " ".join(parser.format_help().split())
    assert "train until this epoch (default: 30)" in text
    assert "where it goes (default: the run's folder)" in text and "(default: results)" not in text
    assert "stop after this many minutes" in text and "(default: None)" not in text
    assert "(default: False)" not in text

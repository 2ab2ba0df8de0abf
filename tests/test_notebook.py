"""pretrained_diffusion.ipynb: committed clean, and runs headless end to end.

The run uses a tiny random SD inpainting pipeline (tools/make_tiny_pipeline.py), a 1-epoch GAN and
a 1-epoch scratch diffusion model at 64^2 trained here on generated images, 2 denoising steps, on
CPU, through the environment variables the notebook documents. No network.
"""
import csv
import math
import os
import shutil

import nbformat
from nbclient import NotebookClient
from PIL import Image

import diffusion
import main as gan
from tests.helpers import write_images
from tools.make_tiny_pipeline import save_tiny_pipeline
from utils.evaluation import pair_name

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOK = os.path.join(ROOT, "pretrained_diffusion.ipynb")
ENV_PARAMETERS = ("INPAINT_MODEL", "GAN_CHECKPOINT", "DIFFUSION_CHECKPOINT", "TEST_DIR", "DEVICE", "NUM_STEPS",
                  "IMAGE_SIZE", "SEED", "RESULTS_DIR")


def execute(env: dict, monkeypatch) -> nbformat.NotebookNode:
    """Run the notebook in a fresh python3 kernel from the repository root, with `env` set; return it."""
    for name, value in {"OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", **env}.items():
        monkeypatch.setenv(name, str(value))  # the kernel process inherits them
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(notebook, timeout=120, kernel_name="python3", resources={"metadata": {"path": ROOT}}).execute()
    return notebook


def outputs(notebook, kind: str) -> list:
    """All outputs of the code cells with this mime type (e.g. image/png) or stream name (stdout)."""
    found = []
    for cell in notebook.cells:
        for out in cell.get("outputs", []):
            if out.get("name") == kind:
                found.append(out["text"])
            elif kind in out.get("data", {}):
                found.append(out["data"][kind])
    return found


def test_committed_notebook_is_clean():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert all(c.outputs == [] and c.execution_count is None for c in code), "clear the outputs before committing"
    parameters = code[0].source
    assert "parameters" in code[0].metadata.get("tags", [])
    for name in ENV_PARAMETERS:
        assert f'env("{name}"' in parameters, f"{name} must be settable from the environment"


def test_notebook_runs_with_tiny_models(tmp_path, monkeypatch):
    # Setup: tiny SD pipeline, two generated test photos, a GAN and a diffusion model trained 1 epoch.
    sd = save_tiny_pipeline("sd-inpaint", tmp_path / "tiny-sd")
    write_images(tmp_path / "train", 2)
    write_images(tmp_path / "test", 2, start_seed=100, size=(70, 90))
    common = ["--mode", "train", "--train_dir", str(tmp_path / "train"), "--image_size", "64", "--batch_size", "2",
              "--epochs", "1"]
    gan.main(gan.parse_args(common + ["--ngf", "8", "--ndf", "8", "--lambda_perc", "0", "--checkpoint_dir",
                                      str(tmp_path / "gan"), "--results_dir", str(tmp_path / "gan"),
                                      "--export", str(tmp_path / "gan.pth")]))
    shutil.rmtree(tmp_path / "gan")  # the export is all the notebook needs (tests keep their temp files small)
    diffusion.main(diffusion.parse_args(common + ["--base_channels", "8", "--channel_mult", "1,2",
                                                  "--num_inference_steps", "2", "--checkpoint_dir",
                                                  str(tmp_path / "diffusion"), "--results_dir",
                                                  str(tmp_path / "diffusion")]))
    results = tmp_path / "results"

    notebook = execute({"INPAINT_MODEL": sd, "GAN_CHECKPOINT": tmp_path / "gan.pth",
                        "DIFFUSION_CHECKPOINT": tmp_path / "diffusion" / "checkpoint_epoch_1.pth",
                        "TEST_DIR": tmp_path / "test", "DEVICE": "cpu", "NUM_STEPS": 2, "IMAGE_SIZE": 64,
                        "SEED": 0, "RESULTS_DIR": results}, monkeypatch)

    with open(results / "comparison.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["method"] for r in rows] == ["GAN", "scratch diffusion (ddim 2 steps)", "pretrained SD (2 steps)",
                                           "harmonic fill (floor)", "Telea inpainting (floor)",
                                           "OpenCV shift-map, exemplar-based (floor)"]
    for r in rows:
        assert math.isfinite(float(r["psnr_hole"])) and float(r["seconds_per_image"]) > 0
        assert r["runs_at_px"] == r["scored_at_px"] == "64"
    assert (results / "comparison.md").read_text().count("\n") == len(rows) + 2
    for name in ("examples.png", "metrics.png", "eval_2.png"):
        assert Image.open(results / name).size[0] > 300, name
    pair = pair_name(tmp_path / "test" / "img_100.png", tmp_path / "test" / "img_101.png")
    assert (results / "pretrained_sd" / f"{pair}_eval_2" / "generated_combined.png").is_file()
    assert len(outputs(notebook, "image/png")) == 3, "the executed notebook shows its three figures"
    assert len(outputs(notebook, "text/html")) == 1, "and the table"
    assert "SKIPPED" not in "".join(outputs(notebook, "stdout"))


def test_notebook_reports_missing_weights_and_goes_on(tmp_path, monkeypatch):
    write_images(tmp_path / "test", 2, start_seed=100)
    results = tmp_path / "results"
    notebook = execute({"INPAINT_MODEL": tmp_path / "no-such-pipeline", "GAN_CHECKPOINT": tmp_path / "no-gan.pth",
                        "DIFFUSION_CHECKPOINT": "", "TEST_DIR": tmp_path / "test", "DEVICE": "cpu",
                        "RESULTS_DIR": results}, monkeypatch)
    stdout = "".join(outputs(notebook, "stdout"))
    assert stdout.count("SKIPPED") == 3 and "INPAINT_MODEL=" in stdout and "GAN_CHECKPOINT" in stdout
    with open(results / "comparison.csv") as f:
        assert [r["method"] for r in csv.DictReader(f)] == ["harmonic fill (floor)", "Telea inpainting (floor)",
                                                            "OpenCV shift-map, exemplar-based (floor)"]
    assert len(outputs(notebook, "image/png")) == 3

"""Training in two CPU processes (torchrun underneath `accelerate launch`, gloo), as the README documents."""
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import torch

import main as gan
from tests.helpers import tiny_gan_train_argv

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_processes_train_one_model_on_different_images_and_resume_in_one(data, tmp_path):
    out = tmp_path / "run"
    # batch 1: each of the two processes gets 2 of the 4 training images, i.e. 2 steps per epoch.
    argv = tiny_gan_train_argv(data, out, "--batch_size", "1", "--cpu", "--threads", "1", "--save_every", "1")
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
              "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
              "--main_process_ip", "127.0.0.1", "--main_process_port", str(free_port()),
              str(ROOT / "tests" / "distributed_probe.py"), *argv]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(launch, capture_output=True, text=True, timeout=600, cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr[-3000:]

    ranks = [json.loads((out / f"probe_rank_{rank}.json").read_text()) for rank in (0, 1)]
    assert [len(r["batches"]) for r in ranks] == [2, 2]
    assert not set(ranks[0]["batches"]) & set(ranks[1]["batches"]), "both processes trained on the same images"
    # DDP averages the gradients: after the last step both processes hold the same weights.
    assert ranks[0]["generator"] == ranks[1]["generator"]
    assert ranks[0]["discriminator"] == ranks[1]["discriminator"]
    # Only the main process prints and writes: one checkpoint, one progress bar's lines, one of each notice.
    assert sorted(p.name for p in out.glob("*.pth")) == ["checkpoint_epoch_1.pth"]
    assert result.stdout.count("writing checkpoints to") == 1 and result.stdout.count("using 1 torch thread") == 1
    assert result.stdout.count("saved ") == 1

    checkpoint = torch.load(out / "checkpoint_epoch_1.pth", map_location="cpu", weights_only=True)
    assert checkpoint["step"] == 2  # steps of one process; each step saw 2 images, one per process
    gan.main(gan.parse_args(["--mode", "train", "--checkpoint_path", str(out / "checkpoint_epoch_1.pth"),
                             "--checkpoint_dir", str(out), "--results_dir", str(out), "--epochs", "2", "--cpu",
                             "--threads", "1"]))
    resumed = torch.load(out / "checkpoint_epoch_2.pth", map_location="cpu", weights_only=True)
    assert resumed["epoch"] == 2 and resumed["step"] == 2 + 4  # one process: all 4 images, batch 1

    # A new run in the same folders: every process refuses, the main one says why, in one line; none dies on a
    # lost connection to the other (the launcher still reports the failed processes after it).
    launch[launch.index("--main_process_port") + 1] = str(free_port())
    again = subprocess.run(launch, capture_output=True, text=True, timeout=600, cwd=tmp_path, env=env)
    assert again.returncode != 0
    errors = [line for line in again.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "hold another run's files" in errors[0], again.stderr[-3000:]
    assert "Connection closed" not in again.stderr and "gloo" not in again.stderr.lower(), again.stderr[-3000:]

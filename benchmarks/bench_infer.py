"""End-to-end latency of filling one pair of photos, as a user runs it: a whole process, start to exit.

    python benchmarks/bench_infer.py
    python benchmarks/bench_infer.py --image1 A.jpg --image2 B.jpg --repeats 3

Times, each --repeats times (median printed), with the shipped checkpoints:
  * `python main.py --image1 A --image2 B` (eval_2 at the photos' resolution, the default) and with
    `--output_size model` (the GAN's 128x128); `python main.py --mode eval` (the 6 embedded test photos,
    scored, images and metrics.csv written);
  * `python diffusion.py --mode eval_2 ...` (the shipped 64x64 diffusion baseline, DDIM 50 steps,
    the default; and --num_inference_steps 1000 --scheduler ddpm, the document's sampler, with --ddpm);
Every run writes to a temporary folder. The machine's state (idle or busy) is the caller's.
"""
import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image1", default=str(ROOT / "data/scenery/test/mate_green_meadow.jpg"))
    parser.add_argument("--image2", default=str(ROOT / "data/scenery/test/lomiri_picos_mountains.jpg"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--ddpm", action="store_true", help="also time 1000 DDPM steps (slow)")
    return parser.parse_args(argv)


def wall_seconds(cmd, repeats: int = 1, env=None) -> float:
    """Median wall-clock seconds of running `cmd` from the repository root; exits with its stderr if it fails."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        done = subprocess.run(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        times.append(time.perf_counter() - start)
        if done.returncode:
            raise SystemExit(f"{' '.join(cmd)} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return statistics.median(times)


def main(args):
    photos = ["--image1", args.image1, "--image2", args.image2]
    with tempfile.TemporaryDirectory() as tmp:
        commands = {
            "main.py eval_2, photos' resolution": [sys.executable, "main.py", *photos, "--output", f"{tmp}/a.png"],
            "main.py eval_2 --output_size model": [sys.executable, "main.py", *photos, "--output_size", "model",
                                                   "--output", f"{tmp}/b.png"],
            "main.py eval of data/scenery/test (6 photos)": [sys.executable, "main.py", "--mode", "eval",
                                                              "--results_dir", f"{tmp}/c"],
            "diffusion.py eval_2 (DDIM 50, 64x64)": [sys.executable, "diffusion.py", "--mode", "eval_2", *photos,
                                                     "--output_size", "model", "--results_dir", f"{tmp}/d"],
        }
        if args.ddpm:
            commands["diffusion.py eval_2 (DDPM 1000, 64x64)"] = [
                sys.executable, "diffusion.py", "--mode", "eval_2", *photos, "--output_size", "model",
                "--scheduler", "ddpm", "--num_inference_steps", "1000", "--results_dir", f"{tmp}/e"]
        print(f"end-to-end latency, median of {args.repeats} whole processes (start to exit):")
        for name, cmd in commands.items():
            print(f"  {name:46s} {wall_seconds(cmd, args.repeats):6.2f} s", flush=True)


if __name__ == "__main__":
    from utils.cli import run
    sys.exit(run(main, parse_args))

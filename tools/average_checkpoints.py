"""Average the generators of several checkpoints of one run's lineage into one export (a uniform "model soup").

    python tools/average_checkpoints.py --export runs/soup.pth \
        runs/run44/checkpoint_epoch_12.pth runs/run44/checkpoint_epoch_14.pth runs/run45/checkpoint_epoch_10.pth
    python benchmarks/score.py --test_dir data/scenery_large/val --floors "" --checkpoint soup=runs/soup.pth

Each checkpoint contributes its EMA generator (its raw weights where it has none), as `main.py --mode eval` loads
it; floating-point tensors are averaged, the rest (counters) taken from the first. Averaging weights works for
checkpoints that share a start and differ by fine-tuning (Wortsman et al. 2022, "Model soups"; Izmailov et al.
2018, stochastic weight averaging): a longer-horizon EMA over the snapshots, which cancels part of each snapshot's
own noise. It is meaningless for unrelated runs, so it refuses checkpoints whose architecture differs. The export
(fp16, as `main.py --export` writes) carries the first checkpoint's config, plus the averaged files under
"averaged_from".
"""
import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from utils.errors import InputError  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoints", nargs="+", help="main.py training checkpoints or generator exports")
    parser.add_argument("--export", required=True, help="where to write the averaged generator")
    return parser.parse_args(argv)


def average_generators(generators: list):
    """The first generator, its floating-point weights replaced by the mean over `generators` (same architecture)."""
    import torch
    first = generators[0]
    states = [g.state_dict() for g in generators]
    with torch.no_grad():
        averaged = {name: torch.stack([s[name].float() for s in states]).mean(0).to(value.dtype)
                    if value.is_floating_point() else value for name, value in states[0].items()}
    first.load_state_dict(averaged)
    return first


def main(args):
    from utils.files import check_checkpoint_path
    if len(args.checkpoints) < 2:
        raise InputError("give at least two checkpoints to average")
    for path in args.checkpoints:
        check_checkpoint_path(path, "the checkpoint list")
    from tqdm import tqdm
    from models.loading import export_generator, load_generator
    loaded = [load_generator(path) for path in tqdm(args.checkpoints, desc="loading", unit="checkpoint")]
    first_architecture = loaded[0][0].config
    for path, (generator, _) in zip(args.checkpoints[1:], loaded[1:]):
        if generator.config != first_architecture:
            raise InputError(f"{path} has another architecture than {args.checkpoints[0]} "
                             "(only checkpoints of one run's lineage can be averaged)")
    generator = average_generators([g for g, _ in loaded])
    config = dict(loaded[0][1], averaged_from=[str(p) for p in args.checkpoints])
    path = export_generator(generator, config, args.export)
    print(f"exported the average of {len(args.checkpoints)} generators to {path}")


if __name__ == "__main__":
    from utils.cli import run
    sys.exit(run(main, parse_args))

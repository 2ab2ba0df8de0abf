"""Average the generators of several checkpoints of one run's lineage into one export (a uniform "model soup").

    python tools/average_checkpoints.py --export runs/soup.pth \\
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


def average_weights(paths: list, progress=iter) -> tuple:
    """(averaged state_dict, GeneratorConfig, config) of the generators of `paths`, read one checkpoint at a time
    (a running float64 sum, so memory does not grow with the count): floating-point tensors are averaged (and
    cast back to the first's dtype), the rest (counters) taken from the first. InputError where a checkpoint's
    architecture differs from the first's. `progress` wraps the iteration over the other paths (e.g. tqdm)."""
    from utils.loading import generator_weights
    first, first_architecture, first_config = generator_weights(paths[0])
    sums = {name: value.double() if value.is_floating_point() else value for name, value in first.items()}
    for path in progress(paths[1:]):
        weights, architecture, _ = generator_weights(path)
        if architecture != first_architecture or weights.keys() != sums.keys():
            raise InputError(f"{path} has another architecture than {paths[0]} "
                             "(only checkpoints of one run's lineage can be averaged)")
        for name, value in weights.items():
            if value.is_floating_point():
                sums[name] += value.double()
    averaged = {name: (value / len(paths)).to(first[name].dtype) if value.is_floating_point() else value
                for name, value in sums.items()}
    return averaged, first_architecture, first_config


def main(args):
    from utils.files import check_checkpoint_path
    if len(args.checkpoints) < 2:
        raise InputError("give at least two checkpoints to average")
    for path in args.checkpoints:
        check_checkpoint_path(path, "the checkpoint list")
    from functools import partial
    from tqdm import tqdm
    from utils.loading import export_generator, generator_from_weights
    weights, architecture, config = average_weights(
        args.checkpoints, partial(tqdm, desc="averaging", unit="checkpoint", initial=1, total=len(args.checkpoints)))
    config = dict(config, averaged_from=[str(p) for p in args.checkpoints])
    path = export_generator(generator_from_weights(weights, architecture, config), config, args.export)
    print(f"exported the average of {len(args.checkpoints)} generators to {path}")


if __name__ == "__main__":
    from utils.cli import run
    sys.exit(run(main, parse_args))

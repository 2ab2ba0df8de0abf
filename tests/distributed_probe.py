"""Run by tests/test_distributed.py under `accelerate launch`: main.py's training, with a spy on train_step.

Writes <checkpoint_dir>/probe_rank_<RANK>.json: a digest of each batch the rank trained on, and digests of
the generator's and the discriminator's weights after its last step. (Not a test module: pytest does not
collect it; it needs the process group that the launcher sets up.)
"""
import hashlib
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import main as gan  # noqa: E402


def digest(tensors) -> str:
    sha = hashlib.sha256()
    for tensor in tensors:
        sha.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
    return sha.hexdigest()[:16]


def run_probe(argv) -> None:
    args = gan.parse_args(argv)
    record = {"batches": [], "generator": None, "discriminator": None}
    train_step = gan.train_step

    def spy(batch, generator, discriminator, *rest, **options):
        losses = train_step(batch, generator, discriminator, *rest, **options)
        record["batches"].append(digest([batch["image"]]))
        record["generator"] = digest(generator.parameters())
        record["discriminator"] = digest(p for p in discriminator.parameters() if p.requires_grad)
        return losses

    gan.train_step = spy
    gan.main(args)
    path = Path(args.checkpoint_dir) / f"probe_rank_{os.environ.get('RANK', '0')}.json"
    path.parent.mkdir(parents=True, exist_ok=True)  # the main process may not have made it yet
    path.write_text(json.dumps(record))


if __name__ == "__main__":
    run_probe(sys.argv[1:])

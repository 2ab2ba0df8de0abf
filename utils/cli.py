"""Command-line plumbing shared by main.py and diffusion.py."""
import argparse
import contextlib
import sys
import warnings
from pathlib import Path
from typing import NamedTuple

from data.images import MAX_PIXELS, check_image_file, check_image_size, list_images
from data.masks import check_crop_ratio
from utils.errors import InputError
from utils.files import check_checkpoint_path, check_writable_folder, repo_path

MODES = {"train": "train a model on --train_dir (resume one with --checkpoint_path)",
         "eval": "fill and score every photo of --test_dir",
         "eval_2": "fill the gap between a square of --image1 and a square of --image2"}
# Flags that act in the eval modes (every other flag sets up training: given there, it is refused).
# Scripts add theirs (main.py: --baseline; diffusion.py: the sampler's).
EVAL_FLAGS = {"eval": {"mode", "checkpoint_path", "test_dir", "results_dir", "crop_ratio", "image_size", "batch_size",
                       "mixed_precision", "cpu", "output_size", "max_megapixels"},
              "eval_2": {"mode", "checkpoint_path", "image1", "image2", "output", "results_dir", "crop_ratio",
                         "image_size", "mixed_precision", "cpu", "output_size", "max_megapixels"}}
EVAL_ONLY_FLAGS = {"image1", "image2", "output", "output_size"}  # refused by --mode train


def labelled_path(spec: str) -> tuple:
    """A benchmark's "[LABEL=]PATH" argument -> (label, path); label "" when none is given. The last "=" splits, so
    a label may hold "=" and a path may not."""
    label, _, path = spec.rpartition("=")
    return label, path


class CheckpointSpec(NamedTuple):
    """A benchmark's "[raw:][LABEL=]PATH" argument: which weights of which file, under which name."""
    label: str
    path: str
    use_ema: bool  # False for "raw:": a training checkpoint's raw generator weights, not its EMA copy


def checkpoint_spec(spec: str, default_prefix: str = "") -> CheckpointSpec:
    """"[raw:][LABEL=]PATH" -> CheckpointSpec; the label defaults to default_prefix + the file's stem (+ " (raw
    weights)")."""
    use_ema = not spec.startswith("raw:")
    label, path = labelled_path(spec.removeprefix("raw:"))
    default = default_prefix + Path(path).stem + ("" if use_ema else " (raw weights)")
    return CheckpointSpec(label or default, path, use_ema)


def labelled_checkpoints(specs, flag: str = "--checkpoint") -> list:
    """[CheckpointSpec] of a probe's repeated "[raw:][LABEL=]PATH" arguments; InputError naming `flag` for a path
    that is not a file (before torch is imported)."""
    checkpoints = [checkpoint_spec(spec) for spec in specs]
    for checkpoint in checkpoints:
        check_checkpoint_path(checkpoint.path, flag)
    return checkpoints


def floor_names(text: str, flag: str = "--floors") -> list:
    """A probe's comma-separated training-free fills ("harmonic,shiftmap"), each checked against
    models.options.BASELINE_NAMES (InputError naming `flag` and the choices)."""
    from models.options import BASELINE_NAMES
    names = [name for name in text.split(",") if name]
    unknown = sorted(set(names) - set(BASELINE_NAMES))
    if unknown:
        raise InputError(f"{flag}: unknown {', '.join(unknown)} (choose from {', '.join(sorted(BASELINE_NAMES))})")
    return names


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """--help with the description as written (its example commands) and each flag's default after its help,
    unless the help already names it or there is none to name (None, False, "")."""

    def _get_help_string(self, action):
        text = action.help or ""
        if ("%(default)" in text or "default" in text.lower() or not action.option_strings
                or action.default in (None, False, "", argparse.SUPPRESS)):
            return text
        return f"{text} (default: %(default)s)"


class Parser(argparse.ArgumentParser):
    """ArgumentParser whose `--snake_case` flags also accept `--kebab-case` (both spellings work), and that
    records which flags the command line gave (`given_flags`), as opposed to defaults."""

    def __init__(self, **kwargs):
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(**kwargs)

    def add_argument(self, *names, **kwargs):
        return super().add_argument(*with_kebab_spellings(names), **kwargs)

    def error(self, message):
        """One line, as the scripts' own refusals (argparse would print the whole usage, 50-odd lines, first)."""
        self.exit(2, f"error: {message} ({self.prog} --help lists the flags)\n")

    def add_argument_group(self, *args, **kwargs):
        """A --help group whose flags also get their --kebab-case spelling."""
        group = super().add_argument_group(*args, **kwargs)
        plain = group.add_argument
        group.add_argument = lambda *names, **options: plain(*with_kebab_spellings(names), **options)
        return group

    def parse_args(self, args=None, namespace=None):
        argv = sys.argv[1:] if args is None else list(args)
        if any(action.dest == "config" for action in self._actions):
            self._apply_config(argv)
        parsed = super().parse_args(argv, namespace)
        # Parse again with every default suppressed: what is left was on the command line.
        defaults, parser_defaults = [(action, action.default) for action in self._actions], self._defaults
        try:
            for action, _ in defaults:
                action.default = argparse.SUPPRESS
            self._defaults = {}  # set_defaults(...) values
            explicit, _ = super().parse_known_args(args, argparse.Namespace())
        finally:
            self._defaults = parser_defaults
            for action, default in defaults:
                action.default = default
        parsed._given = frozenset(vars(explicit))
        parsed._config_keys = getattr(self, "_config_keys", frozenset())  # what --config's file sets
        return parsed


    def _apply_config(self, argv) -> None:
        """--config FILE: the file's `flag: value` pairs become this parse's defaults, so flags on the
        command line override them (and only those count as given). Unknown keys and bad values are
        refused with the file's name."""
        pre = argparse.ArgumentParser(add_help=False)
        pre.add_argument("--config", "--config-file", dest="config")
        known, _ = pre.parse_known_args(argv)
        if not known.config:
            return
        values = load_config_file(known.config)
        self._config_keys = frozenset(values)
        actions = {a.dest: a for a in self._actions if a.dest not in ("help", "config")}
        unknown = sorted(set(values) - set(actions))
        if unknown:
            raise InputError(f"--config {known.config}: unknown key(s) {', '.join(unknown)} (keys are flag names "
                             f"without the dashes, e.g. epochs; see --help)")
        for key, value in values.items():
            action = actions[key]
            if isinstance(value, str) and action.type is not None:
                try:
                    value = action.type(value)
                except (ValueError, argparse.ArgumentTypeError) as exc:
                    raise InputError(f"--config {known.config}: {key}: {exc}") from None
            if action.choices is not None and value not in action.choices:
                choices = ", ".join(map(str, action.choices))
                raise InputError(f"--config {known.config}: {key} must be one of {choices}, got {value!r}")
            self.set_defaults(**{key: value})


def load_config_file(path, _including=()) -> dict:
    """A recipe file (configs/*.yaml): a mapping of flag names (without dashes) to values, or InputError.

    `base: FILE` (a path relative to this file's folder) starts from that recipe's values, which this file's
    own lines then override: a stage of a chain states only what it changes. Bases may have bases."""
    path = Path(path)
    if path.is_dir():
        raise InputError(f"--config {path} is a folder: pass a recipe file in it (e.g. {path / 'quickstart.yaml'})")
    if not path.is_file():
        if _including:
            raise InputError(f"--config {_including[-1]}: base: file not found: {path} (a path relative to the "
                             f"folder of the file that names it)")
        raise InputError(f"--config: file not found: {path} (the recipes are in configs/)")
    import yaml
    try:
        values = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise InputError(f"--config {path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if values is None:  # an empty file would silently run the defaults
        raise InputError(f"--config {path} is empty: give `flag: value` lines (e.g. epochs: 10), or drop --config")
    if not isinstance(values, dict):
        raise InputError(f"--config {path}: expected `flag: value` lines, got a {type(values).__name__}")
    values = {str(k).replace("-", "_"): v for k, v in values.items()}
    base = values.pop("base", None)
    if base is None:
        return values
    base_path = path.parent / str(base)
    chain = (*_including, path)
    if base_path.resolve() in {p.resolve() for p in chain}:
        raise InputError(f"--config {path}: base: {base} is already in the chain "
                         f"{' -> '.join(str(p) for p in (*chain, base_path))}")
    return {**load_config_file(base_path, chain), **values}


def with_kebab_spellings(names) -> tuple:
    """("--checkpoint_path",) -> ("--checkpoint_path", "--checkpoint-path")."""
    extra = [n.replace("_", "-") for n in names if n.startswith("--") and "_" in n]
    return tuple(names) + tuple(n for n in extra if n not in names)


def given_flags(args) -> frozenset:
    """Destinations of the flags given on the command line (empty for a namespace built in code)."""
    return getattr(args, "_given", frozenset())


def numbers(text: str) -> list:
    """A comma-separated list of numbers ("1,1.5") -> [1.0, 1.5] (an argparse type)."""
    return [float(v) for v in text.split(",")]


def output_size_arg(text: str):
    """--output_size: "model" or a side in pixels."""
    if text == "model":
        return text
    try:
        size = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a side in pixels or 'model', got {text!r}") from None
    if not 8 <= size <= 16384:
        raise argparse.ArgumentTypeError(f"the side must be between 8 and 16384 pixels, got {size}")
    return size


def add_probe_args(parser: argparse.ArgumentParser, floors: str) -> None:
    """The flags of a benchmarks/probe_*.py script that scores fills of one folder (utils.evaluation.probe_inputs)."""
    parser.add_argument("--test_dir", required=True, help="folder of photos to fill (a validation split)")
    parser.add_argument("--checkpoint", action="append", default=[], metavar="[raw:][LABEL=]PATH",
                        help="a generator (training checkpoint: its EMA weights, or with raw: its raw weights; "
                             "or an export); repeatable")
    parser.add_argument("--floors", default=floors, help="training-free fills to score too ('' for none)")
    parser.add_argument("--image_size", type=int, default=128, help="square side the photos are scored at")
    parser.add_argument("--crop_ratio", type=float, default=0.4, help="side of each known square as a fraction")
    parser.add_argument("--batch_size", type=int, default=15, help="images per forward pass")


def add_shared_args(parser: Parser, default_size: int, default_batch: int, default_lr: float,
                    default_precision: str = "no") -> dict:
    """Flags that mean the same thing in main.py and diffusion.py, in --help groups; returns the groups
    ("run", "training", "hardware") for the script's own flags."""
    titles = {"run": "what to run (eval, eval_2, or train and resume)", "training": "training data and schedule",
              "hardware": "hardware (chosen from the machine by default)"}
    groups = {name: parser.add_argument_group(title) for name, title in titles.items()}
    run, training, hardware = groups["run"], groups["training"], groups["hardware"]
    run.add_argument("--config", default=None,
                     help="recipe file (configs/*.yaml: `flag: value` lines); flags on the command line override it")
    run.add_argument("--mode", choices=tuple(MODES), default=None,
                     help="train, eval or eval_2 (default: eval_2 when --image1/--image2 are given)")
    run.add_argument("--checkpoint_path", default=None,
                     help="train: resume from it; eval/eval_2: model to use")
    run.add_argument("--image1", help="eval_2: photo giving the bottom-left patch")
    run.add_argument("--image2", help="eval_2: photo giving the top-right patch")
    run.add_argument("--output", help="eval_2: write only the filled image to this file (.png, .jpg/.jpeg at "
                                      "quality 95, .webp) or, if it is a folder, into it")
    run.add_argument("--output_size", type=output_size_arg, default=None,
                     help="eval/eval_2: side of the output in pixels, or 'model' for the model's own size "
                          "(default: eval_2 the smaller of the two photos' shorter sides, eval the model's); "
                          "larger than the model's, its fill is upsampled with its finest grain in grey "
                          "(docs/fullres.md)")
    run.add_argument("--test_dir", default=str(repo_path("data/scenery/test")),
                     help="folder of test images for eval (default: the repository's data/scenery/test)")
    run.add_argument("--results_dir", default="results", help="eval outputs and training logs/samples")
    run.add_argument("--max_megapixels", type=float, default=40.0,
                     help="refuse photos with more pixels than this (read from the file's header, before decoding: "
                          "a decompression bomb never reaches memory); eval and training skip them with a warning")
    training.add_argument("--train_dir", default=str(repo_path("data/scenery/train")),
                          help="folder of training images (recursive; default: the repository's data/scenery/train)")
    training.add_argument("--epochs", type=int, default=30, help="train until this epoch (total, also when resuming)")
    training.add_argument("--image_size", type=int, default=default_size,
                          help="train (and --baseline): square side S, 64, 128, 256 or 512; a trained model fills "
                               "at its own (see --output_size)")
    training.add_argument("--crop_ratio", type=float, default=0.4,
                          help="side of each known square as a fraction of S, in (0, 0.5]")
    training.add_argument("--batch_size", type=int, default=default_batch, help="images per training step")
    training.add_argument("--lr", type=float, default=default_lr, help="learning rate (Adam)")
    training.add_argument("--checkpoint_dir", default="checkpoints", help="where training writes checkpoints")
    training.add_argument("--overwrite", action="store_true",
                          help="train: start a new run in folders that hold another run's files, deleting its "
                               "checkpoint_epoch_*.pth, checkpoint_interrupted.pth and <results_dir>/train logs")
    training.add_argument("--save_every", type=int, default=5, help="write a checkpoint every N epochs (and the last)")
    training.add_argument("--max_minutes", type=float, default=None,
                          help="stop after the epoch during which this many minutes of training have passed, with a "
                               "checkpoint (resume it with --checkpoint_path); for a session or device time limit")
    training.add_argument("--log_interval", type=int, default=10, help="log losses to CSV every N steps")
    training.add_argument("--seed", type=int, default=0, help="seed of the weights' init, crops and masks")
    training.add_argument("--repeat", type=int, default=1,
                          help="passes over the training folder per epoch (random crops differ); for small folders")
    training.add_argument("--num_workers", type=int, default=0, help="DataLoader worker processes")
    training.add_argument("--mask_kinds", default="gap",
                          help="training masks, comma-separated from gap,box,stroke,outpaint (data/masks.py; eval "
                               "always uses gap)")
    hardware.add_argument("--threads", default="auto",
                          help="torch CPU threads: a number, or auto = the cores not busy with other work at the start "
                               "(docs/speed.md); OMP_NUM_THREADS wins")
    hardware.add_argument("--mixed_precision", choices=("auto", "no", "bf16", "fp16"), default=default_precision,
                          help="autocast precision; auto: bf16 on GPUs with bf16 and on AVX-512-BF16 / AMX CPUs, "
                               "else fp32 (utils/hardware.py)")
    hardware.add_argument("--cpu", action="store_true", help="run on CPU even if a GPU is available")
    return groups


def short_usage(prog: str) -> str:
    lines = [f"usage: python {prog} --mode {{{','.join(MODES)}}} [flags]   (python {prog} --help lists them all)"]
    lines += [f"  --mode {mode:7s} {text}" for mode, text in MODES.items()]
    lines.append(f"  python {prog} --image1 A.jpg --image2 B.jpg     (no --mode: eval_2)")
    return "\n".join(lines) + "\n"


def check_shared_args(parser: Parser, args, eval_flags=(), eval_only_flags=()) -> None:
    """Pick the mode, reject counts that cannot work, and refuse flags that would do nothing in the mode.

    No --mode: eval_2 if --image1/--image2 are given, else a short usage and exit status 2 (nothing
    starts training unless asked). eval_flags: the script's own flags that act in eval/eval_2;
    eval_only_flags: its flags that act only there.
    """
    if args.mode is None:
        if not (args.image1 or args.image2):
            parser.exit(2, short_usage(parser.prog) + f"{parser.prog}: error: pass --mode, or --image1 and --image2\n")
        args.mode = "eval_2"
    for flag in ("epochs", "batch_size", "save_every", "log_interval", "repeat"):
        if getattr(args, flag) < 1:
            raise InputError(f"--{flag} must be >= 1, got {getattr(args, flag)}")
    if args.num_workers < 0:
        raise InputError(f"--num_workers must be >= 0 (0: load in the main process), got {args.num_workers}")
    if not args.lr >= 0:  # 0 is allowed: the weights stay as they are (the tests' frozen runs)
        raise InputError(f"--lr must be >= 0, got {args.lr:g}")
    for flag in ("max_minutes", "max_megapixels"):
        value = getattr(args, flag, None)
        if value is not None and not value > 0:
            raise InputError(f"--{flag} must be > 0, got {value:g}")
    args.threads = str(args.threads)  # a config file's `threads: 4` is read as a number
    if args.threads != "auto" and not (args.threads.isdigit() and int(args.threads) >= 1):
        raise InputError(f"--threads must be auto or a number >= 1, got {args.threads!r}")
    check_crop_ratio(args.crop_ratio)
    if args.mode == "train":
        check_image_size(args.image_size)
    given = given_flags(args)
    if args.mode != "train" and "config" in given:
        # A recipe file does in eval what its keys do there: the eval flags it sets act (crop_ratio, test_dir,
        # ...), and a training recipe, which a checkpoint already carries, is refused.
        config_keys = getattr(args, "_config_keys", frozenset())
        idle_keys = sorted(config_keys - EVAL_FLAGS[args.mode] - set(eval_flags))
        if idle_keys:
            shown = ", ".join(idle_keys[:4]) + (f" and {len(idle_keys) - 4} more" if len(idle_keys) > 4 else "")
            raise InputError(f"--config {args.config} sets {shown}, which do nothing in --mode {args.mode} (a "
                             "checkpoint carries its own recipe): drop --config")
        # The file's keys count as given, as on the command line: eval uses a given --crop_ratio over the
        # checkpoint's (utils.evaluation.run_eval_mode), and so a config's.
        given = (given - {"config"}) | config_keys
        args._given = given
    if args.mode == "train":
        idle = given & (EVAL_ONLY_FLAGS | set(eval_only_flags))
    else:
        idle = given - EVAL_FLAGS[args.mode] - set(eval_flags)
    if idle:
        flags = ", ".join(f"--{name}" for name in sorted(idle))
        raise InputError(f"{flags} {'does' if len(idle) == 1 else 'do'} nothing in --mode {args.mode}: "
                         f"drop {'it' if len(idle) == 1 else 'them'}")


def photo_pixel_limit(args) -> int:
    """--max_megapixels in pixels (data/images.py's MAX_PIXELS for a namespace built without the flag)."""
    megapixels = getattr(args, "max_megapixels", None)
    return MAX_PIXELS if megapixels is None else int(megapixels * 1e6)


def check_input_files(args) -> None:
    """Refuse missing inputs by their names, and photos by their headers, before anything heavy is imported:
    a wrong path costs well under a second instead of torch's import. eval_2: --image1 and --image2 (the
    --max_megapixels and minimum-side rule of data/images.py); eval: --test_dir; train: --train_dir and
    --val_dir; any mode: --checkpoint_path and --init_from, and that the output folders (--output or
    --results_dir; in training --checkpoint_dir too) can be written. Where each file is read, it is checked in
    full."""
    if args.mode == "eval_2":
        if not args.image1 or not args.image2:
            raise InputError("eval_2 needs two photos: pass --image1 PATH --image2 PATH")
        for flag in ("image1", "image2"):
            try:
                check_image_file(getattr(args, flag), max_pixels=photo_pixel_limit(args))
            except InputError as exc:
                raise InputError(f"--{flag}: {exc}") from None
    elif args.mode == "eval":
        list_images(args.test_dir)
    else:
        for folder in (args.train_dir, getattr(args, "val_dir", None)):
            if folder:
                list_images(folder)
    for flag in ("checkpoint_path", "init_from"):
        if getattr(args, flag, None):
            check_checkpoint_path(getattr(args, flag), f"--{flag}")
    # Where the results go, before the work: a fill or an epoch of training is not lost to a folder that cannot be
    # written.
    if args.mode == "eval_2" and getattr(args, "output", None):
        output = Path(args.output)
        check_writable_folder(output if output.is_dir() else output.parent, "--output")
    elif not resumed_run_folder(args, "results_dir"):
        check_writable_folder(args.results_dir, "--results_dir")
    if args.mode == "train" and not resumed_run_folder(args, "checkpoint_dir"):
        check_writable_folder(args.checkpoint_dir, "--checkpoint_dir")


def resumed_run_folder(args, flag: str) -> bool:
    """Whether training resumes and `flag` was not given: the run then writes where its checkpoint says
    (utils.training.start_run), not to the flag's default, which need not be checked."""
    return args.mode == "train" and bool(getattr(args, "checkpoint_path", None)) and flag not in given_flags(args)


def parse_or_exit(parse_args, check=None, argv=None):
    """parse_args(argv), then check(args) (e.g. `check_input_files`); bad input (InputError) ends the program
    with one `error: ...` line and exit status 2. The scripts call it before their heavy imports, so that a
    refusal takes well under a second."""
    with one_line_warnings():
        try:
            args = parse_args(argv)
            if check is not None:
                check(args)
            return args
        except InputError as exc:
            print(f"error: {exc}", file=sys.stderr)
            sys.exit(2)


@contextlib.contextmanager
def one_line_warnings():
    """Python warnings as `warning: <message>`, one line, without the file, line and source echo."""
    original = warnings.formatwarning
    warnings.formatwarning = lambda message, category, filename, lineno, line=None: f"warning: {message}\n"
    try:
        yield
    finally:
        warnings.formatwarning = original


def run(main, parse_args, argv=None, args=None) -> int:
    """Parse (unless `args` were parsed already, by `parse_or_exit`), run, and turn bad input (InputError)
    into one `error: ...` line with exit status 2."""
    with one_line_warnings():
        try:
            main(parse_args(argv) if args is None else args)
        except InputError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    return 0

"""Command line: ``python -m surrogate train …`` (also under ``torchrun … -m surrogate train …``) and
``python -m surrogate import-elmneuron DIR --out RUN`` (:mod:`surrogate.import_published`).

Settings come from, in increasing precedence: TrainConfig defaults, a run's saved config.json (with
``--resume``), a ``--config`` file (JSON or TOML, keys = TrainConfig fields), then the options given.
User errors print one line ``error: …`` on stderr and exit with status 2; a Ctrl-C prints one line saying how to
continue the run and exits with status 130.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from biophys.dataset import StoreError
from surrogate.checkpoint import RESUME_HINT
from surrogate.config import DATA_MODES, ConfigError, TrainConfig
from surrogate.import_published import REQUIRED_FILES, import_elmneuron
from surrogate.models import MODEL_KINDS
from surrogate.published import PublishedError
from surrogate.run import CHECKPOINT_FILE, CONFIG_FILE, RunError
from surrogate.train import TrainingError, TrainingInterrupted, train

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for a process ended by Ctrl-C


def _json_object(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("must be a JSON object, e.g. '{\"d_memory\": 10}'")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line on stderr, exit status 2."""

    def error(self, message: str):
        self.exit(EXIT_USER_ERROR, f"error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m surrogate", description=__doc__,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = commands.add_parser(
        "train", help="train a surrogate model into a run directory",
        description="Train a surrogate on random windows of a NeuronIO training store, validate on the whole "
                    "simulations of a validation store after every epoch, and write a run directory (config.json, "
                    "metrics.json, history.json, model.pt = best weights, checkpoint.pt = last state, curves.png). "
                    "Run under `torchrun --nproc_per_node N -m surrogate train …` for data-parallel training.",
    )
    p.add_argument("--model", choices=MODEL_KINDS, help="surrogate kind (default: branch-elm)")
    p.add_argument("--train", metavar="STORE", help="training NeuronIO store (Zarr directory)")
    p.add_argument("--valid", metavar="STORE", help="validation NeuronIO store (Zarr directory)")
    p.add_argument("--out", metavar="RUN", required=True, help="run directory to create (must be absent or empty), "
                   "or to continue with --resume")
    p.add_argument("--config", metavar="FILE", type=Path,
                   help="JSON or TOML file whose keys are TrainConfig fields (options given here override it)")
    p.add_argument("--model-config", metavar="JSON", type=_json_object,
                   help="model hyper-parameters as a JSON object, e.g. '{\"d_memory\": 10}' or '{\"preset\": "
                        "\"small\"}' (keys: the model's config dataclass fields)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its checkpoint.pt; settings not given are taken from its "
                        "config.json, and settings that change what is computed must not differ")
    p.add_argument("--epochs", type=int, metavar="N", help="epochs (default 10)")
    p.add_argument("--batches-per-epoch", type=int, metavar="N", help="batches per epoch and process (default 100)")
    p.add_argument("--batch-size", type=int, metavar="N", help="windows per batch and process (default 8)")
    p.add_argument("--window-ms", type=int, metavar="MS", help="training window length in ms (default 500)")
    p.add_argument("--burn-in-ms", type=int, metavar="MS",
                   help="first ms of each window / validation simulation left out of the loss (default 150)")
    p.add_argument("--skip-ms", type=int, metavar="MS",
                   help="windows start at or after this time in ms (default 500, less if simulations are short)")
    p.add_argument("--lr", type=_positive_float, metavar="LR",
                   help="Adam's initial learning rate, cosine-decayed to 0 over all batches (default 5e-4)")
    p.add_argument("--grad-clip-norm", type=_positive_float, metavar="NORM",
                   help="clip the gradients' global norm to NORM before each step (default: no clipping)")
    p.add_argument("--seed", type=int, metavar="S", help="seed of model initialisation and window sampling (default 0)")
    p.add_argument("--early-stopping-patience", type=int, metavar="N",
                   help="stop after N validations without a lower validation loss (default 0 = never)")
    p.add_argument("--valid-every", type=int, metavar="N",
                   help="validate every N epochs and after the last (default 1)")
    p.add_argument("--valid-batch-size", type=int, metavar="N",
                   help="whole validation simulations per forward pass (default 4)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), help="where to train (default auto: cuda if available)")
    p.add_argument("--threads", type=int, metavar="N", help="torch CPU threads per process (default: torch's choice)")
    p.add_argument("--max-wall-s", type=_positive_float, metavar="S",
                   help="wall-clock budget of this invocation in seconds; training stops after the batch that "
                        "exceeds it, validates and checkpoints (continue with --resume)")
    p.add_argument("--data-mode", choices=DATA_MODES,
                   help="memory: load the stores into RAM; lazy: read each training window and validation "
                        "simulation from disk when needed (for stores larger than RAM; same results); auto "
                        "(default): memory when the uncompressed data take at most a quarter of the RAM")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p = commands.add_parser(
        "import-elmneuron", help="a published ELM checkpoint (Spieler et al. 2023) as a run directory",
        description="Read a checkpoint folder of the public ELM release (models/<name>/ in a clone of "
                    "github.com/AaronSpieler/elmneuron: " + ", ".join(REQUIRED_FILES) + ", and train_config.json "
                    "and model_stats.json when present) and write a run directory that `python -m analysis "
                    "evaluate` and `report` score like any other, with the published metrics and the original "
                    "NeuronIO input layout.",
    )
    p.add_argument("checkpoint", metavar="DIR", type=Path, help="the checkpoint folder, e.g. models/num_memory_20")
    p.add_argument("--out", metavar="RUN", type=Path, required=True, help="run directory to create (absent or empty)")
    return parser


def _read_config_file(path: Path) -> dict:
    if not path.exists():
        raise ConfigError(f"config file {path} does not exist")
    text = path.read_text()
    try:
        if path.suffix.lower() == ".toml":
            import tomllib

            return tomllib.loads(text)
        return json.loads(text)
    except ValueError as exc:  # JSONDecodeError and TOMLDecodeError are ValueErrors
        raise ConfigError(f"cannot parse {path}: {exc}") from None


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The TrainConfig the options describe (see the module docstring for precedence)."""
    values: dict = {}
    saved = Path(args.out) / CONFIG_FILE
    if args.resume and saved.exists():
        values.update(_read_config_file(saved))
    if args.config is not None:
        values.update(_read_config_file(args.config))
    fields = {k: v for k, v in vars(args).items()
              if k not in ("command", "config", "resume", "no_progress") and v is not None}
    values.update(fields)
    return TrainConfig.from_dict(values)


def _interrupted(out: str) -> str:
    """What to do after a Ctrl-C that came before training could write its checkpoint."""
    if (Path(out) / CHECKPOINT_FILE).exists():
        return f"interrupted; continue with: {RESUME_HINT.format(out=Path(out).resolve())}"
    return f"interrupted before {out} held a checkpoint; nothing to resume"


def _import_command(args: argparse.Namespace) -> int:
    try:
        out = import_elmneuron(args.checkpoint, args.out)
    except PublishedError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    print(out)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "import-elmneuron":
        return _import_command(args)
    try:
        cfg = config_from_args(args)
        out = train(cfg, resume=args.resume, progress=not args.no_progress)
    except (ConfigError, StoreError, RunError, TrainingError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except TrainingInterrupted as exc:
        print(exc, file=sys.stderr)
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        print(_interrupted(args.out), file=sys.stderr)
        return EXIT_INTERRUPTED
    print(out)
    return 0

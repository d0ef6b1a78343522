"""SASRec trained beside the T5: `genrec train-sasrec` in a child process on one CPU thread while
the T5 trains in this one, so that one `train-recommender` ends with the fused pipeline (T5 +
SASRec + prior, weights chosen on validation; docs/fusion.md) instead of two commands in two
terminals. A rerun resumes both from their checkpoints."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from genrec.core.config import apply_overrides
from genrec.core.errors import GenrecError
from genrec.core.io import atomic_write_json
from genrec.recommender.sasrec_config import SASRecConfig
from genrec.recommender.train_config import SASRecTrainConfig

SASREC_LOG = "train_sasrec.log"  # in the dataset folder: the child's output
SASREC_OPTIONS = "train_sasrec_options.json"  # in the dataset folder: the child's --config
# What `accelerate launch` / torchrun set for their processes: the child is one process of its own.
DISTRIBUTED_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "GROUP_RANK", "ROLE_RANK",
                         "MASTER_ADDR", "MASTER_PORT")


def sasrec_configs(train: dict | None = None, model: dict | None = None) -> tuple[SASRecTrainConfig, SASRecConfig]:
    """SASRec's defaults with the fields of ``train`` / ``model`` on top (a config file's sections)."""
    return (apply_overrides(SASRecTrainConfig(), train or {}, "SASRec train options"),
            apply_overrides(SASRecConfig(), model or {}, "SASRec model options"))


@dataclass
class SASRecBeside:
    """What the SASRec trained beside the T5 gets: train-sasrec's options (its `--config` sections)."""

    # Its time budget (> 0) and threads (> 0), unless set here: the T5's budget and one thread.
    train: SASRecTrainConfig = field(default_factory=SASRecTrainConfig)
    model: SASRecConfig = field(default_factory=SASRecConfig)  # num_items, text_dim: set from the dataset
    text: bool = True  # item vectors read the items' text embeddings (False: learned ids only)

    @classmethod
    def from_options(cls, train: dict | None = None, model: dict | None = None, **fields) -> SASRecBeside:
        """SASRec's defaults with the fields of ``train`` / ``model`` on top (`--sasrec-config`'s sections)."""
        return cls(*sasrec_configs(train, model), **fields)


def sasrec_command(beside: SASRecBeside, dataset_dir: Path, out: Path, time_budget_minutes: float) -> list[str]:
    """The child's command line; its options file written beside the dataset. Its time budget is
    the T5's unless it has one of its own (without a budget each trains to its own end, and the
    T5's run waits for SASRec's). The options are checked here, so a bad one fails at once."""
    beside.train.check()
    beside.model.check()
    train = dataclasses.replace(beside.train, time_budget_minutes=beside.train.time_budget_minutes or time_budget_minutes,
                                threads=beside.train.threads or 1)
    options = dataset_dir / SASREC_OPTIONS
    atomic_write_json(options, {"train": dataclasses.asdict(train), "model": dataclasses.asdict(beside.model)})
    return [sys.executable, "-m", "genrec.cli", "train-sasrec", "--dataset", str(dataset_dir), "--out", str(out),
            "--config", str(options), "--no-progress", *([] if beside.text else ["--no-text"])]


def child_environment() -> dict[str, str]:
    """This process's environment for the child: one torch thread, and none of a distributed launch's
    variables (under `accelerate launch` it would otherwise try to join the parent's process group)."""
    return {key: value for key, value in os.environ.items()
            if key not in DISTRIBUTED_VARIABLES and not key.startswith(("ACCELERATE_", "TORCHELASTIC_"))} | {
        "OMP_NUM_THREADS": "1"}


def _say_if_it_fails(child: subprocess.Popen, log: Path) -> None:
    """One line as soon as the child fails, not only when the T5's training ends."""
    if child.wait() != 0:
        print(f"SASRec training beside the T5 stopped with exit {child.returncode} (see {log}); the T5 goes on, "
              "and train-recommender fails when it ends", flush=True)


def _die_with_parent() -> None:
    """In the child before it runs (Linux): SIGTERM when the parent dies, so a killed train-recommender
    leaves no SASRec training behind to race a rerun on the same checkpoint."""
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG


@contextlib.contextmanager
def training_beside(command: list[str] | None, log: Path):
    """Run ``command`` (None: nothing) in a child process for the length of the block, then wait for
    it; the block failing or being interrupted stops the child (its checkpoint stays for a rerun).
    A child that fails is a one-line error naming its log."""
    if command is None:
        yield
        return
    with open(log, "a") as out:
        child = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=child_environment(),
                                 preexec_fn=_die_with_parent)
        watcher = threading.Thread(target=_say_if_it_fails, args=(child, log), daemon=True)
        watcher.start()
        try:
            yield
            if child.poll() is None:
                print(f"waiting for SASRec to finish (log {log}) ...", flush=True)
            code = child.wait()
            watcher.join(timeout=5)  # its line (if the child failed) before the error below
        except BaseException:
            child.terminate()
            child.wait()
            raise
    if code != 0:
        raise GenrecError(f"SASRec training beside the T5 failed (exit {code}); see {log}")

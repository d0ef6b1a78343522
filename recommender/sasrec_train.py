"""Training SASRec in the shared loop (``recommender.trainer``): one row per user, the
full or sampled softmax (``recommender.sasrec.sasrec_loss``), validation by ranking the catalogue."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from genrec.core.errors import GenrecError
from genrec.data_prep.dataset import ProcessedDataset
from genrec.recommender.sasrec import NegativeSampler, SASRec, SASRecConfig, sasrec_loss
from genrec.recommender.sasrec_recommender import SASRecRecommender
from genrec.recommender.data import epoch_batches, micro_batches
from genrec.recommender.sequences import SequenceRows
from genrec.recommender.train import (plot_curves, prepare_process, set_seed_everywhere, training_summary,
                                      weighted_micro_steps)
from genrec.recommender.train_config import SASRecTrainConfig
from genrec.recommender.trainer import TrainingState, run_training

BEST_FILE = "model.pt"


class SASRecTask:
    """SASRec for ``run_training``."""

    name = "train sasrec"

    def __init__(self, dataset: ProcessedDataset, model_config: SASRecConfig, config: SASRecTrainConfig,
                 text: np.ndarray | None):
        config.check()
        self.dataset, self.model_config, self.config = dataset, model_config, config
        self.loss = config.loss_for(dataset.num_items)
        self.model = SASRec(model_config, text)
        self.rows = SequenceRows.build(dataset.train_sequences(), model_config.max_len)
        if len(self.rows) == 0:
            raise GenrecError(f"{dataset.path}: no training rows (every user needs at least 4 items)")
        self.examples = self.rows.num_targets
        self.batching = (", full softmax" if self.loss == "full" else
                         f", sampled softmax over {config.negatives} {config.sampler} negatives")
        self.batching += f", micro-batches <= {config.micro_batches}" if config.micro_batches > 1 else ""
        self.batching += f", length bucketing {config.sort_window}" if config.sort_window > 1 else ""
        counts = np.bincount(np.concatenate(dataset.train_sequences()), minlength=dataset.num_items + 1)
        self.sampler = NegativeSampler.build(config.sampler, config.negatives, dataset.num_items, counts)
        self.recommender = SASRecRecommender(self.model)  # the validation ranker, sharing the weights

    def epoch_plan(self, epoch: int) -> list[np.ndarray]:
        return epoch_batches(self.rows.lengths, self.config.batch_size, self.config.seed, epoch,
                             self.config.sort_window)

    def step(self, model, index: np.ndarray, accelerator) -> torch.Tensor:
        """One batch's mean loss over its item positions, computed in micro-batches of similar
        length (each cut to its longest row) that share the step's negatives: the same gradient as
        the whole padded batch at a fraction of the padding."""
        device = accelerator.device
        negatives, log_q = None, None
        if self.loss == "sampled":
            negatives = self.sampler.draw().to(device)
            log_q = self.sampler.log_q.to(device) if self.config.sampler == "popularity" else None

        def piece_loss(piece: np.ndarray) -> torch.Tensor:
            inputs, targets = self.rows.batch(piece, device)
            return sasrec_loss(model, inputs, targets, negatives, log_q)

        pieces = micro_batches(index, self.rows.lengths, self.config.micro_batches)
        counts = [int(self.rows.lengths[piece].sum()) for piece in pieces]
        return weighted_micro_steps(model, pieces, counts, piece_loss, device, accelerator.backward,
                                    accelerator.no_sync)

    def validate(self, model, users: np.ndarray) -> dict:
        self.recommender.model = model
        return self.recommender.evaluate(self.dataset, "valid", users, beams=30)

    def save_best(self, model, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        torch.save(model.state_dict(), path / BEST_FILE)

    def finalize(self, out: Path, best: Path, state: TrainingState, log: list, meta: dict | None) -> None:
        self.model.load_state_dict(torch.load(best / BEST_FILE, weights_only=True))
        plot_curves(log, out / "training_curves.png")
        SASRecRecommender(self.model).save(out, meta={**training_summary(self.dataset, state), "loss": self.loss,
                                                      **(meta or {})})


def train_sasrec(dataset: ProcessedDataset, out: Path, model_config: SASRecConfig, config: SASRecTrainConfig,
                 text: np.ndarray | None, progress: bool = True, meta: dict | None = None) -> TrainingState:
    """Train (or resume) SASRec and write its artifact to ``out``."""
    table = (model_config.num_items + 1) * model_config.d_model * 4  # bytes of one dense item-table gradient
    prepare_process(config, largest_kept=table // 2 if table >= 8 << 20 else 1 << 30)
    set_seed_everywhere(config.seed)
    task = SASRecTask(dataset, model_config, config, text)
    return run_training(task, out, config, model_config, dataset.num_users, progress, meta)

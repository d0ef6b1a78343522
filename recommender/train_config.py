"""The training loop's settings (``TrainConfig``) for the T5 and SASRec (``SASRecTrainConfig``). No
torch here (as transformers' configuration_*.py beside modeling_*.py): the CLI and the pipeline's
config dataclasses import these at once."""

from __future__ import annotations

from dataclasses import dataclass

from genrec.core.errors import GenrecError

LOSSES = ("full", "sampled")  # SASRec's losses (recommender.sasrec.sasrec_loss)
LOSS_CHOICES = ("auto", *LOSSES)
NEGATIVE_SAMPLERS = ("uniform", "popularity")  # how the sampled loss draws negatives
FULL_SOFTMAX_ITEMS = 20_000  # loss "auto": the full softmax up to this many items (Beauty's 12k, rounded up)


@dataclass
class TrainConfig:
    batch_size: int = 256
    lr: float = 2e-3
    weight_decay: float = 0.01
    warmup_steps: int = 300
    max_steps: int = 20000
    epochs: float = 0.0  # > 0: train this many epochs (overrides max_steps)
    eval_every: int = 1000
    eval_users: int = 2000  # validation users sampled for the periodic check (0 = all)
    eval_beams: int = 20
    patience: int = 4  # evaluations without NDCG@10 improvement before stopping
    micro_batches: int = 6  # per step: the batch sorted by length, cut into <= this many (1 = one padded batch)
    sort_window: int = 1  # > 1: length-bucketed batches, this many sorted together (the old default, 50)
    time_budget_minutes: float = 0.0  # > 0: stop by this much training wall time (all attempts); 0 = off
    seed: int = 0
    mixed_precision: str = "auto"  # auto (bf16 on a GPU that has it) | no | bf16 | fp16
    fast_dropout: bool = True  # CPU: cheap dropout masks (recommender.fast_dropout); same model, same p
    threads: int = 0  # torch CPU threads (0 = torch's default, one per core; 1 on a machine other jobs share)


@dataclass
class SASRecTrainConfig(TrainConfig):
    """The shared loop's settings with SASRec's defaults, and its loss."""

    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.0
    warmup_steps: int = 100
    max_steps: int = 100_000
    micro_batches: int = 3  # bench/results/sasrec-speed-beauty: 1.6-1.9x the padded batch's steps/s (6: 1.2x)
    eval_every: int = 350
    eval_users: int = 3000
    patience: int = 5
    # "full": softmax over the whole catalogue; "sampled": over shared negatives; "auto": full up to
    # FULL_SOFTMAX_ITEMS items (docs/sasrec.md: at the hour budget on Beauty's 12k items full beat
    # sampled on validation, 0.0613 vs 0.0553), sampled above (its step does not grow with the catalogue)
    loss: str = "auto"
    negatives: int = 1024  # shared negatives per batch (sampled)
    sampler: str = "popularity"  # how negatives are drawn: popularity (with logQ correction) or uniform

    def check(self) -> None:
        if self.loss not in LOSS_CHOICES:
            raise GenrecError(f"loss must be one of {', '.join(LOSS_CHOICES)}, got {self.loss!r}")
        if self.sampler not in NEGATIVE_SAMPLERS:
            raise GenrecError(f"sampler must be one of {', '.join(NEGATIVE_SAMPLERS)}, got {self.sampler!r}")
        if self.negatives < 1:
            raise GenrecError(f"negatives must be at least 1, got {self.negatives}")

    def loss_for(self, num_items: int) -> str:
        """The loss a run trains with: ``auto`` resolved by the catalogue's size."""
        if self.loss != "auto":
            return self.loss
        return "full" if num_items <= FULL_SOFTMAX_ITEMS else "sampled"

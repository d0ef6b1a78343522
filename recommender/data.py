"""Training and evaluation examples as precomputed token arrays (no work on the training hot path).

An example is (history, target): the encoder reads the SID tokens of the user's most recent
``max_history`` items before the target, then eos; the decoder produces the target's SID tokens.
Training uses every prefix of each user's training sequence (items[:-2]); validation and test
are leave-one-out (data_prep.dataset.ProcessedDataset.split).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from genrec.data_prep.dataset import ProcessedDataset
from genrec.recommender.encoder_input import attention_mask_of
from genrec.recommender.vocab import EOS_TOKEN, PAD_TOKEN, SidVocab


@dataclass
class TokenizedExamples:
    """Right-padded encoder rows [n, max_len] (or [n, max_len, L + 1] with one position per item,
    recommender.encoder_input), their lengths, targets [n, L + 1], user and target ids."""

    inputs: np.ndarray
    lengths: np.ndarray
    targets: np.ndarray
    users: np.ndarray
    target_items: np.ndarray

    def __len__(self) -> int:
        return len(self.lengths)

    def batch(self, index: np.ndarray, device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
        """Dynamic padding: cut the batch to its own longest input."""
        width = int(self.lengths[index].max())
        input_ids = torch.from_numpy(self.inputs[index, :width]).to(device)
        return {"input_ids": input_ids, "attention_mask": attention_mask_of(input_ids),
                "labels": torch.from_numpy(self.targets[index]).to(device)}


class ExampleBuilder:
    """Turns item-id histories into encoder rows for one tokenizer's SIDs.

    ``per_item=False`` (encoder_input "tokens"): a row is token ids, L + 1 positions per item.
    ``per_item=True`` (encoder_input "items"): a row is [positions, L + 1], one position per item
    holding its SID tokens; the user token and eos fill a position each, padded with PAD.
    """

    def __init__(self, item_tokens: np.ndarray, vocab: SidVocab, max_history: int, eos: bool = True,
                 per_item: bool = False):
        # item_tokens[i] = SID tokens of item i + 1; row 0 of the padded table is item "0" (unused).
        self.table = np.concatenate([np.zeros((1, item_tokens.shape[1]), dtype=np.int64), item_tokens])
        self.vocab = vocab
        self.max_history = max_history
        self.extra = 1 if vocab.num_user_buckets else 0
        self.eos = eos  # False for the item-causal encoder (recommender.item_causal): no token sees all
        self.per_item = per_item
        self.positions_per_item = 1 if per_item else item_tokens.shape[1]
        self.row_shape = (item_tokens.shape[1],) if per_item else ()  # one position's shape
        self.max_len = max_history * self.positions_per_item + int(eos) + self.extra

    def encode_history(self, history: list[int], user_id: int = 0) -> np.ndarray:
        recent = np.asarray(history[-self.max_history :], dtype=np.int64)
        special = ([self.vocab.user_token(user_id)] if self.extra else []), ([EOS_TOKEN] if self.eos else [])
        if not self.per_item:
            return np.concatenate([special[0], self.table[recent].reshape(-1), special[1]]).astype(np.int64)
        width = self.table.shape[1]
        prefix, suffix = (np.pad(np.asarray(s, dtype=np.int64)[:, None], ((0, 0), (0, width - 1))) for s in special)
        return np.concatenate([prefix, self.table[recent], suffix]).astype(np.int64)

    def build(self, examples: list[tuple[int, list[int], int]]) -> TokenizedExamples:
        """``examples``: (user id, history item ids, target item id)."""
        inputs = np.full((len(examples), self.max_len, *self.row_shape), PAD_TOKEN, dtype=np.int64)
        lengths = np.zeros(len(examples), dtype=np.int64)
        for row, (user, history, _) in enumerate(examples):
            tokens = self.encode_history(history, user)
            inputs[row, : len(tokens)] = tokens
            lengths[row] = len(tokens)
        targets = np.asarray([t for _, _, t in examples], dtype=np.int64)
        return TokenizedExamples(inputs, lengths, self.table[targets], np.asarray([u for u, _, _ in examples]), targets)


class TargetRows:
    """``targets[index]`` of streamed examples: the SID tokens of their target items, looked up on use."""

    def __init__(self, table: np.ndarray, items: np.ndarray):
        self.table, self.items = table, items

    def __getitem__(self, index) -> np.ndarray:
        return self.table[self.items[index]]

    def __len__(self) -> int:
        return len(self.items)


class PrefixExamples:
    """Every-prefix training examples, streamed: each batch's encoder rows are built when it is
    drawn (a few vectorised gathers), so memory holds the item sequences and three small numbers
    per example, not a padded row per example (2M users x 10 items: ~0.3 GB instead of ~10 GB).
    Same interface and the same batches as ``TokenizedExamples`` from ``ExampleBuilder.build``."""

    def __init__(self, builder: "ExampleBuilder", sequences: list[tuple[int, list[int]]]):
        self.builder = builder
        lengths = np.fromiter((len(items) for _, items in sequences), dtype=np.int64, count=len(sequences))
        self.flat = np.fromiter((i for _, items in sequences for i in items), dtype=np.int32, count=int(lengths.sum()))
        starts = np.cumsum(lengths) - lengths
        per_user = np.maximum(lengths - 1, 0)  # targets at positions 1..n-1 of each sequence
        owner = np.repeat(np.arange(len(sequences)), per_user)
        position = np.arange(len(owner)) - np.repeat(np.cumsum(per_user) - per_user, per_user) + 1
        self.end = (starts[owner] + position).astype(np.int64)  # the target's index in flat
        self.count = np.minimum(position, builder.max_history).astype(np.int32)  # history items read
        self.users = np.fromiter((u for u, _ in sequences), dtype=np.int64, count=len(sequences))[owner]
        self.target_items = self.flat[self.end].astype(np.int64)
        self.lengths = self.count.astype(np.int64) * builder.positions_per_item + int(builder.eos) + builder.extra
        self.targets = TargetRows(builder.table, self.target_items)

    def __len__(self) -> int:
        return len(self.end)

    def rows(self, index: np.ndarray) -> np.ndarray:
        """Right-padded encoder rows of examples ``index``, cut to their longest (as ``encode_history``)."""
        builder, index = self.builder, np.asarray(index)
        count, end = self.count[index].astype(np.int64), self.end[index]
        slots = np.arange(int(count.max()))
        valid = slots[None, :] < count[:, None]
        items = np.where(valid, self.flat[np.clip(end[:, None] - count[:, None] + slots[None, :], 0, len(self.flat) - 1)], 0)
        tokens = np.where(valid[..., None], builder.table[items], PAD_TOKEN)  # [n, H, L + 1]
        rows = len(index)
        if not builder.per_item:
            tokens = tokens.reshape(rows, -1)
        width = int(self.lengths[index].max())
        out = np.full((rows, width, *builder.row_shape), PAD_TOKEN, dtype=np.int64)
        if builder.extra:
            user_tokens = np.array([builder.vocab.user_token(int(u)) for u in self.users[index]], dtype=np.int64)
            if builder.per_item:
                out[:, 0, 0] = user_tokens
            else:
                out[:, 0] = user_tokens
        out[:, builder.extra:builder.extra + tokens.shape[1]] = tokens
        if builder.eos:
            eos_at = builder.extra + count * builder.positions_per_item
            if builder.per_item:
                out[np.arange(rows), eos_at, 0] = EOS_TOKEN
            else:
                out[np.arange(rows), eos_at] = EOS_TOKEN
        return out

    def batch(self, index: np.ndarray, device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
        input_ids = torch.from_numpy(self.rows(index)).to(device)
        return {"input_ids": input_ids, "attention_mask": attention_mask_of(input_ids),
                "labels": torch.from_numpy(self.targets[index]).to(device)}


def epoch_batches(lengths: np.ndarray, batch_size: int, seed: int, epoch: int, sort_window: int = 1) -> list[np.ndarray]:
    """The batches of one epoch, a pure function of (seed, epoch) so a resumed run sees the same ones.

    ``sort_window=1`` (the trainer's default): plain random batches; the trainer cuts the padding
    inside each step instead (``micro_batches``), so the gradient is the plain batch's.
    ``sort_window > 1``, length bucketing (the old default, 50): shuffle, sort each window of
    ``sort_window`` batches by input length, cut it into batches, then shuffle the batch order.
    Dynamic padding then pads each batch to nearly its own examples' length (on Beauty: mean width
    29 instead of 81 tokens) while every example is still seen once per epoch, but a batch holds
    examples of similar history length, not a random sample (bench/results/training-quality-beauty/beauty-training-quality.md:
    no quality difference from the default beyond seed noise, 3 seeds, final step).
    """
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(len(lengths))
    window = batch_size * max(1, sort_window)
    batches = []
    for start in range(0, len(order), window):
        chunk = order[start : start + window]
        if sort_window > 1:
            chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    return [batches[i] for i in rng.permutation(len(batches))]


def micro_batches(index: np.ndarray, lengths: np.ndarray, parts: int) -> list[np.ndarray]:
    """Split one batch ``index`` into at most ``parts`` micro-batches with the least padding.

    The examples are sorted by input length (stable, so the split is a pure function of the batch)
    and cut into consecutive runs; with dynamic padding a run costs (its size) x (its longest input)
    encoder tokens, and the cut points minimise the sum over runs (exact dynamic programme over the
    sorted lengths, O(parts * n^2) in numpy, under a millisecond for n = 256). On Beauty a random
    batch of 256 pads to 81 tokens per example; 4 micro-batches bring that to 33, 6 to 30.5, next to
    the 29 of length-bucketed batches, while the step still sees a plain random batch. ``parts <= 1``
    returns the batch unchanged (one micro-batch, original order).
    """
    index = np.asarray(index)
    if parts <= 1 or len(index) <= 1:
        return [index]
    order = index[np.argsort(lengths[index], kind="stable")]
    sorted_lengths = lengths[order].astype(np.float64)
    n, parts = len(order), min(parts, len(order))
    starts = np.arange(n + 1)[:, None]  # cost[i, j]: examples i..j-1 in one run, padded to length j-1
    ends = np.arange(n + 1)[None, :]
    run_cost = np.where(starts < ends, (ends - starts) * sorted_lengths[np.maximum(ends - 1, 0)], np.inf)
    best = np.full(n + 1, np.inf)  # best[j]: least cost of the first j examples in k runs
    best[0] = 0.0
    totals, starts_of = [], []  # per k: best cost of all n examples, start of the last run for each j
    for _ in range(parts):
        total = best[:, None] + run_cost
        start = total.argmin(0)
        best = total[start, np.arange(n + 1)]
        totals.append(best[n])
        starts_of.append(start)
    runs = int(np.argmin(totals)) + 1  # the fewest runs reaching the least padding
    bounds, end = [n], n
    for start in reversed(starts_of[:runs]):
        end = int(start[end])
        bounds.append(end)
    bounds = bounds[::-1]
    return [order[a:b] for a, b in zip(bounds[:-1], bounds[1:])]


def streamed_training_examples(builder: ExampleBuilder, dataset: ProcessedDataset) -> PrefixExamples:
    """``training_examples`` as ``PrefixExamples``: the same examples in the same order, rows built per batch."""
    return PrefixExamples(builder, [(user, dataset.train_sequence(user)) for user in range(1, dataset.num_users + 1)])


def training_examples(dataset: ProcessedDataset) -> list[tuple[int, list[int], int]]:
    """Every prefix of every user's training sequence: (user, items[:t], items[t]) for t >= 1."""
    out = []
    for user in range(1, dataset.num_users + 1):
        seq = dataset.train_sequence(user)
        out.extend((user, seq[:t], seq[t]) for t in range(1, len(seq)))
    return out


def split_examples(dataset: ProcessedDataset, split: str, users: np.ndarray | None = None):
    chosen = range(1, dataset.num_users + 1) if users is None else users
    return [(int(u), *dataset.split(int(u), split)) for u in chosen]

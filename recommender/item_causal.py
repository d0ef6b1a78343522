"""Item-causal encoding and one pass per user sequence.

With ``RecommenderConfig.encoder_attention = "item_causal"`` the encoder reads a history's SID
tokens (an optional user token first, no eos) with an attention mask by item: a token of item j
sees the tokens of items 0..j (the user token sees itself and is seen by all). An item's encoding
then depends only on the items before it, so ONE encoder pass over a user's sequence serves every
next-item target in it: target p's decoder row cross-attends to the encoder positions of items
0..p-1. Every-prefix training runs the encoder once per target instead (about n/2 times the
tokens for a sequence of n items); both give the same loss and gradients (tests/test_item_causal.py).

Training sequences longer than ``max_history + 1`` items are cut into chunks of ``max_history + 1``
items that overlap by one, so every item after the first is a target exactly once and sees at
most ``max_history`` items, as at inference (the last ``max_history`` items of a history).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch
from transformers.modeling_outputs import BaseModelOutput

from genrec.recommender.encoder_input import attention_mask_of, encoder_kwargs
from genrec.recommender.vocab import PAD_TOKEN

PAD_ITEM = 1 << 30  # item index of padding tokens: after every real item


def _unwrapped(model):
    """The model itself under a DistributedDataParallel (or other ``.module``) wrapper."""
    return getattr(model, "module", model)


def is_item_causal(model) -> bool:
    genrec = getattr(_unwrapped(model).config, "genrec", {}) or {}
    return genrec.get("recommender", {}).get("encoder_attention", "bidirectional") == "item_causal"


def _layout(model) -> tuple[int, int]:
    """(encoder positions per item, positions before the first item) of the model's encoder inputs."""
    genrec = _unwrapped(model).config.genrec
    per_item = genrec["recommender"].get("encoder_input", "tokens") == "items"
    return 1 if per_item else len(genrec["position_sizes"]), 1 if genrec["recommender"].get("num_user_buckets", 0) else 0


def token_items(attention_mask: torch.Tensor, sid_length: int, prefix: int) -> torch.Tensor:
    """Item index of every encoder position [B, T]: -1 for the user token, PAD_ITEM for padding."""
    position = torch.arange(attention_mask.shape[1], device=attention_mask.device)
    items = torch.div(position - prefix, sid_length, rounding_mode="floor").expand_as(attention_mask)
    return items.masked_fill(attention_mask == 0, PAD_ITEM)


def item_causal_bias(attention_mask: torch.Tensor, sid_length: int, prefix: int, dtype: torch.dtype) -> torch.Tensor:
    """Additive self-attention mask [B, 1, T, T] of the item-causal encoder (0 = may attend)."""
    items = token_items(attention_mask, sid_length, prefix)
    allowed = (items[:, None, :] <= items[:, :, None]) & (attention_mask[:, None, :] != 0)
    allowed |= torch.eye(items.shape[1], dtype=torch.bool, device=items.device)  # padding rows: no empty softmax
    return torch.zeros(allowed.shape, dtype=dtype, device=items.device).masked_fill(
        ~allowed, torch.finfo(dtype).min)[:, None]


def encoder_hidden(model, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """The encoder's output [B, T, d] under the model's own encoder attention and input
    (recommender.encoder_input: token rows [B, T] or per-item rows [B, T, L + 1]). ``model`` may be
    wrapped (DDP): the encoder is called directly, so the caller provides autocast if it wants it."""
    encoder = _unwrapped(model).get_encoder()
    inputs = encoder_kwargs(model, input_ids)
    if not is_item_causal(model):
        return encoder(**inputs, attention_mask=attention_mask).last_hidden_state
    sid_length, prefix = _layout(model)
    dtype = encoder.embed_tokens.weight.dtype
    if torch.is_autocast_enabled(input_ids.device.type):
        dtype = torch.get_autocast_dtype(input_ids.device.type)
    bias = item_causal_bias(attention_mask, sid_length, prefix, dtype)
    return encoder(**inputs, attention_mask=bias).last_hidden_state


def prefix_loss(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean token cross-entropy of one example per row (every-prefix training and validation),
    plus ``dense_loss`` x the dense item loss when the model has one (``item_input.dense_item_loss``);
    in training, the token cross-entropy with the model's ``label_smoothing``.
    A bidirectional encoder goes through the model's own forward (so DDP sees it)."""
    if not is_item_causal(model):
        out = model(**encoder_kwargs(model, input_ids), attention_mask=attention_mask, labels=labels)
        options = _unwrapped(model).config.genrec["recommender"]
        smoothing, weight = options.get("label_smoothing", 0.0), options.get("dense_loss", 0.0)
        loss = out.loss
        if smoothing and model.training:
            loss = torch.nn.functional.cross_entropy(out.logits.float().flatten(0, 1), labels.flatten(),
                                                     ignore_index=-100, label_smoothing=smoothing)
        if not weight:
            return loss
        from genrec.recommender.item_input import dense_item_loss

        dense = dense_item_loss(_unwrapped(model).item_input, out.encoder_last_hidden_state, attention_mask, labels,
                                options.get("dense_negatives", 0))
        return loss + weight * dense
    hidden = encoder_hidden(model, input_ids, attention_mask)
    return model(encoder_outputs=BaseModelOutput(last_hidden_state=hidden), attention_mask=attention_mask,
                 labels=labels).loss


# -- one pass per user sequence -------------------------------------------------------------------
@dataclass
class SequenceExamples:
    """Chunks of user sequences: encoder inputs [C, T] with lengths, and their targets
    (SID tokens [R, L + 1], owning chunk [R], item position p in the chunk [R])."""

    inputs: np.ndarray
    lengths: np.ndarray
    targets: np.ndarray
    target_chunk: np.ndarray
    target_position: np.ndarray
    users: np.ndarray  # [C]

    def __len__(self) -> int:  # number of targets, as for TokenizedExamples
        return len(self.targets)

    @cached_property
    def counts(self) -> np.ndarray:
        return np.bincount(self.target_chunk, minlength=len(self.lengths))

    @cached_property
    def starts(self) -> np.ndarray:
        """First target row of each chunk: a chunk's targets are one contiguous run, in chunk order."""
        if np.any(np.diff(self.target_chunk) < 0):
            raise ValueError("targets must be grouped by chunk, in chunk order")
        return np.concatenate([[0], np.cumsum(self.counts)[:-1]]).astype(np.int64)

    def batch(self, chunks: np.ndarray, device="cpu") -> dict[str, torch.Tensor]:
        """Encoder rows of ``chunks`` (padded to their longest) and all of their targets."""
        chunks = np.asarray(chunks)
        # Each chunk's rows are start..start + count (no search over all targets per step).
        counts = self.counts
        rows = np.concatenate([np.arange(self.starts[c], self.starts[c] + counts[c]) for c in chunks])
        width = int(self.lengths[chunks].max())
        input_ids = torch.from_numpy(self.inputs[chunks, :width]).to(device)
        return {"input_ids": input_ids, "attention_mask": attention_mask_of(input_ids),
                "labels": torch.from_numpy(self.targets[rows]).to(device),
                "target_chunk": torch.from_numpy(np.repeat(np.arange(len(chunks)), counts[chunks])).to(device),
                "target_position": torch.from_numpy(self.target_position[rows]).to(device)}


def build_sequence_examples(builder, sequences: list[tuple[int, list[int]]]) -> SequenceExamples:
    """``sequences``: (user id, training items) pairs -> chunks of at most max_history + 1 items."""
    window = builder.max_history
    chunks = []
    for user, items in sequences:
        for start in range(0, max(len(items) - 1, 0), window):
            chunk = items[start:start + window + 1]
            if len(chunk) >= 2:
                chunks.append((user, chunk))
    max_len = builder.extra + window * builder.positions_per_item
    inputs = np.full((len(chunks), max_len, *builder.row_shape), PAD_TOKEN, dtype=np.int64)
    lengths = np.zeros(len(chunks), dtype=np.int64)
    targets, owner, position = [], [], []
    for row, (user, chunk) in enumerate(chunks):
        tokens = builder.encode_history(chunk[:-1], user)  # the context: every item but the last
        inputs[row, :len(tokens)] = tokens
        lengths[row] = len(tokens)
        targets.extend(chunk[1:])
        owner.extend([row] * (len(chunk) - 1))
        position.extend(range(1, len(chunk)))
    return SequenceExamples(inputs, lengths, builder.table[np.asarray(targets, dtype=np.int64)],
                            np.asarray(owner, dtype=np.int64), np.asarray(position, dtype=np.int64),
                            np.asarray([u for u, _ in chunks], dtype=np.int64))


def sequence_batches(counts: np.ndarray, batch_size: int, seed: int, epoch: int) -> list[np.ndarray]:
    """Chunks of one epoch in random order (a pure function of seed and epoch), cut into batches of
    about ``batch_size`` targets each, so a step means about as many examples as every-prefix."""
    order = np.random.default_rng([seed, epoch, 1]).permutation(len(counts))
    totals = np.cumsum(counts[order])
    cuts = np.searchsorted(totals, np.arange(batch_size, totals[-1], batch_size), side="left") + 1
    return [part for part in np.split(order, cuts) if len(part)]


def one_pass_loss(model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Mean token cross-entropy over every target of the batch's chunks, one encoder pass each."""
    sid_length, prefix = _layout(model)
    hidden = encoder_hidden(model, batch["input_ids"], batch["attention_mask"])
    chunk = batch["target_chunk"]
    items = token_items(batch["attention_mask"], sid_length, prefix)[chunk]
    cross = (items < batch["target_position"][:, None]).long()  # items 0..p-1 (and the user token)
    rows = BaseModelOutput(last_hidden_state=hidden.index_select(0, chunk))
    return model(encoder_outputs=rows, attention_mask=cross, labels=batch["labels"]).loss

"""recommender.fast_dropout: a correct Bernoulli mask, reproducible from torch's seed, and a T5
that computes exactly what it did before the swap wherever dropout is inactive."""

import math

import pytest
import torch
from torch import nn
from transformers import T5Config, T5ForConditionalGeneration

from genrec.recommender.fast_dropout import FastDropout, fast_dropout, keep_mask, use_fast_dropout


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_mask_keeps_one_minus_p_and_preserves_the_mean(p):
    torch.manual_seed(0)
    n = 200_000
    kept = keep_mask(torch.Size([n]), p).double().mean().item()
    assert abs(kept - (1 - p)) < 5 * math.sqrt(p * (1 - p) / n)
    out = fast_dropout(torch.ones(n), p)
    values = torch.unique(out)
    assert len(values) == 2 and values[0] == 0 and values[1].item() == pytest.approx(1 / (1 - p))
    assert abs(out.double().mean().item() - 1.0) < 5 * math.sqrt(p / (1 - p) / n)


def test_masks_follow_torch_seed_and_differ_between_calls():
    x = torch.randn(64, 32)
    torch.manual_seed(5)
    first, second = fast_dropout(x, 0.3), fast_dropout(x, 0.3)
    torch.manual_seed(5)
    assert torch.equal(fast_dropout(x, 0.3), first) and torch.equal(fast_dropout(x, 0.3), second)
    assert not torch.equal(first, second)


def test_inactive_dropout_returns_input_and_gradient_is_the_scaled_mask():
    x = torch.randn(50, 40, requires_grad=True)
    assert fast_dropout(x, 0.0) is x and fast_dropout(x, 0.4, training=False) is x
    module = FastDropout(0.25).eval()
    assert module(x) is x
    y = fast_dropout(x, 0.25)
    y.sum().backward()
    kept = y != 0
    assert torch.allclose(x.grad[kept], torch.full_like(x.grad[kept], 1 / 0.75))
    assert (x.grad[~kept] == 0).all()
    assert torch.allclose(y[kept], x.detach()[kept] / 0.75)


def _t5(dropout):
    torch.manual_seed(0)
    config = T5Config(vocab_size=40, d_model=16, d_kv=8, num_heads=2, d_ff=32, num_layers=2, num_decoder_layers=2,
                      dropout_rate=dropout, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0)
    return T5ForConditionalGeneration(config)


def _batch():
    ids = torch.tensor([[5, 6, 7, 8, 1], [9, 10, 1, 0, 0]])
    return {"input_ids": ids, "attention_mask": (ids != 0).long(), "labels": torch.tensor([[11, 12, 13], [14, 15, 16]])}


def test_swapped_t5_matches_the_original_where_dropout_is_inactive():
    original, swapped = _t5(0.2).eval(), use_fast_dropout(_t5(0.2)).eval()
    assert not any(type(m) is nn.Dropout for m in swapped.modules())
    assert sum(isinstance(m, FastDropout) for m in swapped.modules()) == sum(
        type(m) is nn.Dropout for m in original.modules())
    with torch.no_grad():
        assert torch.allclose(original(**_batch()).logits, swapped(**_batch()).logits, atol=1e-5)
    # Training mode with p = 0 runs the attention function itself (no dropout anywhere): same loss, same grads.
    original, swapped = _t5(0.0).train(), use_fast_dropout(_t5(0.0)).train()
    loss_a, loss_b = original(**_batch()).loss, swapped(**_batch()).loss
    loss_a.backward()
    loss_b.backward()
    assert torch.allclose(loss_a, loss_b, atol=1e-5)
    for (name, a), b in zip(original.named_parameters(), swapped.parameters()):
        assert torch.allclose(a.grad, b.grad, atol=1e-5), name


def test_swapped_t5_drops_out_in_training_reproducibly():
    model = use_fast_dropout(_t5(0.3)).train()
    torch.manual_seed(1)
    first = model(**_batch()).logits
    torch.manual_seed(1)
    assert torch.equal(model(**_batch()).logits, first)
    assert not torch.equal(model(**_batch()).logits, first)
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(**_batch()).logits, model(**_batch()).logits)

"""SASRec: losses against a direct reference, the causal mask, padding, text-only item vectors."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from genrec.recommender.sasrec import NegativeSampler, SASRec, SASRecConfig, sasrec_loss
from genrec.recommender.sequences import SequenceRows, left_pad


def _model(num_items=30, text_dim=8, dropout=0.0, seed=0, id_dropout=0.0, **options):
    torch.manual_seed(seed)
    text = np.random.default_rng(seed).normal(size=(num_items, text_dim)) if text_dim else None
    config = SASRecConfig(num_items=num_items, text_dim=text_dim, max_len=6, d_model=16, d_ff=32,
                          num_layers=2, num_heads=2, dropout=dropout, id_dropout=id_dropout, **options)
    return SASRec(config, text).eval()


def _batch():
    inputs = torch.tensor([[0, 0, 3, 5, 7, 9], [1, 2, 3, 4, 5, 6], [0, 0, 0, 0, 0, 8]])
    targets = torch.tensor([[0, 0, 5, 7, 9, 11], [2, 3, 4, 5, 6, 7], [0, 0, 0, 0, 0, 30]])
    return inputs, targets


def test_full_softmax_equals_reference_cross_entropy():
    model = _model()
    inputs, targets = _batch()
    hidden = model(inputs)
    table = model.item_vectors()
    expected = []
    for row in range(inputs.shape[0]):
        for position in range(inputs.shape[1]):
            target = int(targets[row, position])
            if target:
                logits = hidden[row, position] @ table[1:].T  # items 1..M only
                expected.append(-F.log_softmax(logits, dim=0)[target - 1])
    assert torch.allclose(sasrec_loss(model, inputs, targets), torch.stack(expected).mean(), atol=1e-6)


def test_sampled_softmax_with_every_item_as_negative_is_the_full_softmax():
    """Loss and gradients: all M items as negatives (the positive among them masked) and no logQ."""
    inputs, targets = _batch()
    full_model, sampled_model = _model(), _model()
    full = sasrec_loss(full_model, inputs, targets)
    sampled = sasrec_loss(sampled_model, inputs, targets, negatives=torch.arange(1, 31))
    assert torch.allclose(full, sampled, atol=1e-6)
    full.backward()
    sampled.backward()
    for (name, a), (_, b) in zip(full_model.named_parameters(), sampled_model.named_parameters()):
        assert torch.allclose(a.grad, b.grad, atol=1e-6), name


def test_logq_correction_subtracts_the_log_sampling_probability():
    model = _model()
    inputs, targets = _batch()
    negatives = torch.tensor([1, 4, 4, 11, 20])
    log_q = torch.log(torch.linspace(0.01, 1.0, 31))
    hidden = model(inputs)[targets > 0]
    kept = targets[targets > 0]
    expected = []
    for h, target in zip(hidden, kept):
        logits = [h @ model.item_vectors(target) - log_q[target]]
        logits += [h @ model.item_vectors(n) - log_q[n] for n in negatives if n != target]
        expected.append(-F.log_softmax(torch.stack(logits), dim=0)[0])
    loss = sasrec_loss(model, inputs, targets, negatives=negatives, log_q=log_q)
    assert torch.allclose(loss, torch.stack(expected).mean(), atol=1e-5)


def test_no_position_sees_the_future_or_the_padding():
    model = _model()
    inputs = torch.tensor([[0, 0, 3, 5, 7, 9]])
    hidden = model(inputs)
    changed = inputs.clone()
    changed[0, 4:] = torch.tensor([12, 13])  # the future of position 3
    assert torch.allclose(model(changed)[0, :4], hidden[0, :4], atol=1e-6)
    assert not torch.allclose(model(changed)[0, 4:], hidden[0, 4:])
    # Fewer padding columns: the real positions keep their hidden states.
    assert torch.allclose(model(inputs[:, 1:])[0, 1:], hidden[0, 2:], atol=1e-5)


def test_scores_rank_every_item_and_never_padding():
    model = _model()
    scores = model.scores(torch.tensor([[0, 0, 0, 1, 2, 3]]))
    assert scores.shape == (1, 31) and torch.isinf(scores[0, 0]) and torch.isfinite(scores[0, 1:]).all()


def test_text_only_items_get_vectors_from_their_text():
    model = _model(use_ids=False)
    assert model.item_ids is None
    text = model.item_text
    assert torch.allclose(model.item_vectors(torch.tensor([4])), model.text_projection(text[4:5]))
    assert torch.allclose(text[1:].norm(dim=-1), torch.ones(30))
    with pytest.raises(ValueError):
        SASRec(SASRecConfig(num_items=3, text_dim=0, use_ids=False))


def test_sampler_draws_by_popularity_and_reports_log_q():
    sampler = NegativeSampler.build("popularity", 4000, 3, np.array([0, 99, 0, 0]))
    assert torch.isinf(sampler.log_q[0])
    assert torch.allclose(sampler.log_q[1:].exp(), torch.tensor([100 / 102, 1 / 102, 1 / 102]))
    draws = sampler.draw(torch.Generator().manual_seed(0))
    assert draws.min() >= 1 and (draws == 1).float().mean() > 0.9
    with pytest.raises(ValueError):
        NegativeSampler.build("zipf", 4, 3)


def test_training_rows_are_shifted_left_padded_windows():
    examples = SequenceRows.build([[1, 2, 3, 4, 5, 6, 7, 8], [4, 5], [9]], max_len=4)
    assert len(examples) == 2 and examples.num_targets == 5
    assert examples.inputs.tolist() == [[4, 5, 6, 7], [0, 0, 0, 4]]
    assert examples.targets.tolist() == [[5, 6, 7, 8], [0, 0, 0, 5]]
    inputs, targets = examples.batch(np.array([1]))
    assert inputs.tolist() == [[4]] and targets.tolist() == [[5]]
    assert left_pad([[1, 2, 3], []], 2).tolist() == [[2, 3], [0, 0]]


@pytest.mark.parametrize("negatives", [None, torch.tensor([1, 3, 5, 7, 2])])
def test_micro_batched_step_has_the_whole_batch_gradient(negatives):
    """Micro-batches cut to their own length, weighted by item positions, sharing the negatives:
    the loss and gradients of the whole padded batch."""
    from genrec.recommender.data import micro_batches
    from genrec.recommender.train import weighted_micro_steps

    rng = np.random.default_rng(0)
    sequences = [list(rng.integers(1, 9, size=n)) for n in (2, 3, 9, 4, 12, 2, 6)]
    rows = SequenceRows.build(sequences, max_len=8)
    model = SASRec(SASRecConfig(num_items=8, max_len=8, d_model=16, d_ff=32, dropout=0.0))
    index = np.arange(len(rows))
    whole = sasrec_loss(model, *rows.batch(index), negatives)
    whole.backward()
    expected = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    pieces = micro_batches(index, rows.lengths, 3)
    assert len(pieces) > 1
    loss = weighted_micro_steps(model, pieces, [int(rows.lengths[p].sum()) for p in pieces],
                                lambda piece: sasrec_loss(model, *rows.batch(piece), negatives))
    assert torch.allclose(loss, whole.detach(), atol=1e-6)
    for got, want in zip((p.grad for p in model.parameters()), expected):
        assert torch.allclose(got, want, atol=1e-6)


def test_id_dropout_drops_id_vectors_in_input_and_output_alike():
    """With id_dropout, a training loss equals the loss of a model whose dropped items' id rows are
    zero (inputs and scored items, one mask for both); in evaluation nothing is dropped."""
    model = _model(id_dropout=0.5).train()
    inputs, targets = _batch()
    torch.manual_seed(3)
    loss = sasrec_loss(model, inputs, targets)
    torch.manual_seed(3)
    keep = model.sample_id_keep()
    assert keep is not None and 0 < keep[1:].sum() < 30 and set(keep.tolist()) <= {0.0, 1.0}
    reference = _model(id_dropout=0.0).train()
    with torch.no_grad():
        reference.item_ids.weight.mul_(keep.unsqueeze(-1))
    assert torch.allclose(loss, sasrec_loss(reference, inputs, targets), atol=1e-6)
    model.eval()
    assert model.sample_id_keep() is None
    assert torch.allclose(sasrec_loss(model, inputs, targets), sasrec_loss(_model(), inputs, targets), atol=1e-6)


def test_bad_id_dropout_is_a_clear_error_and_a_model_without_text_drops_nothing():
    from genrec.core.errors import GenrecError

    with pytest.raises(GenrecError, match="id_dropout"):
        SASRecConfig(num_items=5, text_dim=8, id_dropout=1.0).check()
    for text_dim in (0, 8):  # ids alone, or ids + text (the default 0.5 applies to these only)
        model = _model(text_dim=text_dim, id_dropout=0.5).train()
        assert (model.sample_id_keep() is None) == (text_dim == 0)


def test_the_loss_runs_on_a_ddp_wrapped_model(tmp_path):
    """accelerate wraps the model in DistributedDataParallel when it runs several processes: the
    forward pass goes through the wrapper, the item table is read from the module."""
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    model = _model(id_dropout=0.2).train()
    inputs, targets = _batch()
    negatives = torch.tensor([1, 4, 9, 12])
    torch.manual_seed(5)
    expected = sasrec_loss(model, inputs, targets, negatives)
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'rendezvous'}", rank=0, world_size=1)
    try:
        wrapped = DistributedDataParallel(model)
        torch.manual_seed(5)
        loss = sasrec_loss(wrapped, inputs, targets, negatives)
        loss.backward()
    finally:
        dist.destroy_process_group()
    torch.testing.assert_close(loss, expected)
    assert model.item_ids.weight.grad is not None and model.text_projection.weight.grad is not None

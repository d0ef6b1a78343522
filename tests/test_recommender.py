"""Stage two: vocabulary, examples, batching, training resume, save/load, CLI and errors."""

import itertools
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from genrec.data_prep.dataset import load_processed_dataset
from genrec.cli import main
from genrec.core.errors import GenrecError
from genrec.recommender.constraint import prefix_states
from genrec.recommender.fusion import DecodingPolicy
from genrec.recommender.data import ExampleBuilder, epoch_batches, split_examples, training_examples
from genrec.recommender.model import RecommenderConfig, build_model
from genrec.recommender.recommender import Recommender
from genrec.recommender.train import train_recommender
from genrec.recommender.train_config import TrainConfig
from genrec.recommender.vocab import EOS_TOKEN, PAD_TOKEN, SidVocab
from tests.recommender_fixtures import train_until_killed, write_dataset, write_tokenizer
from genrec.tokenizer.artifact import load_semantic_ids

TINY_MODEL = RecommenderConfig(num_encoder_layers=1, num_decoder_layers=1, d_model=16, num_heads=2, d_kv=8, d_ff=32,
                               dropout=0.1, max_history=5)


def test_vocab_ranges_are_disjoint_and_round_trip():
    vocab = SidVocab((5, 4, 3, 2), num_user_buckets=7)
    ranges = [set(range(o, o + s)) for o, s in zip(vocab.offsets, vocab.position_sizes)]
    assert all(not (a & b) for a, b in itertools.combinations(ranges, 2))
    assert min(min(r) for r in ranges) == 2 and PAD_TOKEN == 0 and EOS_TOKEN == 1
    assert vocab.offsets == (2, 7, 11, 14)
    assert vocab.user_offset == 2 + 14 and vocab.vocab_size == 2 + 14 + 7 + 1  # + the anonymous token
    codes = np.array([[4, 3, 2, 1], [0, 0, 0, 0]])
    np.testing.assert_array_equal(vocab.item_tokens(codes), [[6, 10, 13, 15], [2, 7, 11, 14]])
    np.testing.assert_array_equal(vocab.token_codes(vocab.item_tokens(codes)), codes)
    assert vocab.user_offset <= vocab.user_token(12345) < vocab.vocab_size


def test_item_to_tokens_to_item_round_trip(tmp_path):
    sids = load_semantic_ids(write_tokenizer(tmp_path / "tok", num_items=50, sizes=(4, 4, 3)))
    vocab = SidVocab.for_semantic_ids(sids)
    builder = ExampleBuilder(vocab.item_tokens(sids.codes), vocab, max_history=20)
    item_ids = np.arange(1, 51)
    tokens = builder.table[item_ids]  # item id -> its L + 1 tokens
    found = prefix_states(vocab.prefix_table(sids.codes), torch.from_numpy(tokens))  # tokens -> item id
    np.testing.assert_array_equal(found.numpy(), item_ids)


def test_examples_are_every_training_prefix_and_leave_one_out(tmp_path):
    dataset = load_processed_dataset(write_dataset(tmp_path / "data", num_users=6, num_items=20, seed=1))
    expected = []
    for user, seq in enumerate(dataset.sequences, start=1):
        train = seq[:-2]
        expected += [(user, train[:t], train[t]) for t in range(1, len(train))]
    assert training_examples(dataset) == expected
    for split, cut in (("valid", 2), ("test", 1)):
        for user, history, target in split_examples(dataset, split):
            seq = dataset.sequences[user - 1]
            assert history == seq[:-cut] and target == seq[-cut]


def test_encoder_input_is_recent_history_sid_tokens_then_eos(tmp_path):
    sids = load_semantic_ids(write_tokenizer(tmp_path / "tok", num_items=30))
    vocab = SidVocab.for_semantic_ids(sids)
    builder = ExampleBuilder(vocab.item_tokens(sids.codes), vocab, max_history=3)
    history = [5, 9, 1, 7, 3]
    row = builder.encode_history(history)
    expected = np.concatenate([vocab.item_tokens(sids.codes[[i - 1 for i in history[-3:]]]).reshape(-1), [EOS_TOKEN]])
    np.testing.assert_array_equal(row, expected)
    built = builder.build([(1, history, 4), (2, [2], 6)])
    np.testing.assert_array_equal(built.targets, vocab.item_tokens(sids.codes[[3, 5]]))
    batch = built.batch(np.array([1]))  # dynamic padding: cut to the batch's own longest input
    assert batch["input_ids"].shape == (1, sids.codes.shape[1] + 1)
    assert batch["attention_mask"].all()


def test_epoch_batches_cover_each_example_once_deterministically_and_bucket_lengths():
    rng = np.random.default_rng(0)
    lengths = rng.integers(5, 81, size=1000)
    batches = epoch_batches(lengths, 32, seed=3, epoch=2, sort_window=8)
    assert sorted(np.concatenate(batches).tolist()) == list(range(1000))
    again = epoch_batches(lengths, 32, seed=3, epoch=2, sort_window=8)
    assert all((a == b).all() for a, b in zip(batches, again))
    other_epoch = epoch_batches(lengths, 32, seed=3, epoch=3, sort_window=8)
    assert not all(len(a) == len(b) and (a == b).all() for a, b in zip(batches, other_epoch))
    plain = epoch_batches(lengths, 32, seed=3, epoch=2, sort_window=1)
    padded = lambda bs: sum(len(b) * lengths[b].max() for b in bs)  # noqa: E731
    assert padded(batches) < 0.8 * padded(plain)


def _train(tmp_path, out, max_steps=12):
    dataset = load_processed_dataset(tmp_path / "data")
    sids = load_semantic_ids(tmp_path / "tok")
    config = TrainConfig(batch_size=16, max_steps=max_steps, eval_every=4, eval_users=0, eval_beams=10,
                         patience=100, warmup_steps=2, lr=3e-3)
    return train_recommender(dataset, sids, out, TINY_MODEL, config, progress=False)


def _train_until_killed(tmp_path, out, monkeypatch, kill_at_step):
    train_until_killed(monkeypatch, lambda: _train(tmp_path, out), kill_at_step)


@pytest.fixture
def tiny(tmp_path):
    write_dataset(tmp_path / "data")
    write_tokenizer(tmp_path / "tok")
    return tmp_path


def test_resume_after_interrupt_matches_uninterrupted_run(tiny, monkeypatch):
    torch.manual_seed(0)
    _train(tiny, tiny / "full")
    # killed during step 11: the checkpoint of step 8 survives, steps 9-10 are lost and redone
    _train_until_killed(tiny, tiny / "resumed", monkeypatch, kill_at_step=11)
    assert not (tiny / "resumed" / "genrec.json").exists()
    saved = json.loads((tiny / "resumed" / "checkpoint" / "trainer_state.json").read_text())
    assert saved["step"] == 8 and saved["epoch"] * saved["batches_per_epoch"] + saved["batch_in_epoch"] == 8
    final = _train(tiny, tiny / "resumed")
    assert final.step == 12 and (tiny / "resumed" / "genrec.json").is_file()
    assert not (tiny / "resumed" / "checkpoint").exists()  # a finished run keeps no resume state
    a = Recommender.load(tiny / "full").model.state_dict()
    b = Recommender.load(tiny / "resumed").model.state_dict()
    for name in a:
        torch.testing.assert_close(a[name], b[name], msg=name)


def test_saved_model_reloads_to_identical_recommendations(tiny):
    _train(tiny, tiny / "model", max_steps=8)
    first = Recommender.load(tiny / "model")
    first.save(tiny / "copy")  # save and load are inverses: the copy answers exactly as the original
    second = Recommender.load(tiny / "copy")
    histories = [[1, 2, 3], [5, 6], [20, 21, 22, 23]]
    items_a, scores_a = first.recommend(histories, 10)
    items_b, scores_b = second.recommend(histories, 10)
    np.testing.assert_array_equal(items_a, items_b)
    np.testing.assert_allclose(scores_a, scores_b)
    assert (items_a > 0).all() and items_a.shape == (3, 10)
    dataset = load_processed_dataset(tiny / "data")
    assert first.evaluate(dataset, "valid", beams=10) == second.evaluate(dataset, "valid", beams=10)


def test_exclude_seen_keeps_history_items_out_of_the_beam_and_the_order_of_the_rest(tiny):
    sids = load_semantic_ids(tiny / "tok")
    config = RecommenderConfig(**{**vars(TINY_MODEL), "dropout": 0.0})
    torch.manual_seed(0)
    recommender = Recommender(build_model(config, SidVocab.for_semantic_ids(sids)), sids, config)
    history = [1, 2, 3, 4]
    everything, all_scores = recommender.recommend([history], top_k=recommender.num_items)  # exhaustive
    keep = ~np.isin(everything[0], history)
    # An exhaustive beam with the history left out: the full ranking with those items removed.
    unseen, scores = recommender.recommend([history], top_k=10, beams=recommender.num_items, exclude_seen=True)
    assert unseen[0].tolist() == everything[0][keep][:10].tolist()
    np.testing.assert_allclose(scores[0], all_scores[0][keep][:10], rtol=1e-5)
    # A narrow beam never holds a history item, so it still returns 10 unseen items, each with its exact score.
    narrow, narrow_scores = recommender.recommend([history], top_k=10, beams=10, exclude_seen=True)
    assert (narrow > 0).all() and not set(narrow[0]) & set(history)
    exact = dict(zip(everything[0].tolist(), all_scores[0].tolist()))
    np.testing.assert_allclose(narrow_scores[0], [exact[item] for item in narrow[0]], rtol=1e-5)
    with pytest.raises(GenrecError, match="item ids in 1.."):
        recommender.recommend([[0, 1]])


def test_exclude_seen_fills_every_slot_it_can_with_finite_scores_for_any_history(tiny):
    """Random histories up to most of the catalogue: every answer holds min(k, unseen items) unseen
    items, each with a finite score, and nothing else (masked prefixes never turn into nan)."""
    sids = load_semantic_ids(tiny / "tok")
    config = RecommenderConfig(**{**vars(TINY_MODEL), "dropout": 0.0})
    torch.manual_seed(0)
    recommender = Recommender(build_model(config, SidVocab.for_semantic_ids(sids)), sids, config)
    rng = np.random.default_rng(0)
    count = recommender.num_items
    histories = [rng.choice(np.arange(1, count + 1), size=rng.integers(1, count - 2), replace=False).tolist()
                 for _ in range(60)]
    for beams in (10, 3):
        items, scores = recommender.recommend(histories, 10, beams=beams, exclude_seen=True)
        assert not np.isnan(scores).any()
        for row, history in enumerate(histories):
            found = items[row][items[row] > 0]
            assert len(found) == min(10, count - len(history)) and not set(found) & set(history)
            assert np.isfinite(scores[row][items[row] > 0]).all() and np.isneginf(scores[row][items[row] == 0]).all()


def test_exclude_seen_is_the_policys_default_and_a_request_overrides_it(tiny):
    sids = load_semantic_ids(tiny / "tok")
    config = RecommenderConfig(**{**vars(TINY_MODEL), "dropout": 0.0})
    torch.manual_seed(0)
    recommender = Recommender(build_model(config, SidVocab.for_semantic_ids(sids)), sids, config)
    histories = [[1, 2, 3, 4], [5, 6]]
    excluding = recommender.with_policy(DecodingPolicy(exclude_seen=True))
    np.testing.assert_array_equal(excluding.recommend(histories, 10)[0],
                                  recommender.recommend(histories, 10, exclude_seen=True)[0])
    np.testing.assert_array_equal(excluding.recommend(histories, 10, exclude_seen=False)[0],
                                  recommender.recommend(histories, 10)[0])


def test_a_history_without_a_user_gets_its_own_token_not_a_real_users_bucket():
    vocab = SidVocab((4, 4, 2), num_user_buckets=3)
    buckets = {vocab.user_token(user) for user in range(1, 500)}
    assert buckets == set(range(vocab.user_offset, vocab.user_offset + 3))
    assert vocab.user_token(0) == vocab.anonymous_user_token == vocab.vocab_size - 1
    assert vocab.user_token(0) not in buckets


def test_mismatched_tokenizer_and_bad_inputs_are_clear_errors(tiny, capsys):
    _train(tiny, tiny / "model", max_steps=4)
    other = write_tokenizer(tiny / "other", seed=5)
    with pytest.raises(GenrecError, match="not the one this recommender was trained on"):
        Recommender.load(tiny / "model", tokenizer=other)
    with pytest.raises(GenrecError, match="not a trained recommender"):
        Recommender.load(tiny / "nowhere")
    model, data = str(tiny / "model"), str(tiny / "data")
    assert main(["recommend", "--model", model, "--dataset", data, "--user", "999"]) == 2
    assert "unknown user" in capsys.readouterr().err
    assert main(["recommend", "--model", model, "--dataset", data, "--history", "I1", "NOPE"]) == 2
    assert "unknown item" in capsys.readouterr().err
    assert main(["recommend", "--model", model, "--dataset", data, "--user", "U3", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    dataset = load_processed_dataset(tiny / "data")
    assert [row["item_id"] for row in shown["history"]] == dataset.history(3)
    assert shown["history"][0]["title"] == dataset.item_title(dataset.history(3)[0]) != ""
    assert len(shown["recommendations"]) == 10
    assert main(["evaluate", "--model", model, "--dataset", data, "--split", "valid"]) == 0
    assert "recall@10" in capsys.readouterr().out


def _cli_train_args(tiny, out, steps=40):
    config = tiny / "config.json"
    config.write_text(json.dumps({"train": {"eval_users": 0, "eval_beams": 10, "warmup_steps": 2, "lr": 3e-3},
                                  "model": {k: v for k, v in vars(TINY_MODEL).items()}}))
    return ["train-recommender", "--dataset", str(tiny / "data"), "--tokenizer", str(tiny / "tok"), "--out", str(out),
            "--config", str(config), "--max-steps", str(steps), "--batch-size", "8", "--eval-every", "5",
            "--patience", "100", "--no-progress", "--t5-only"]


def test_killed_cli_training_continues_where_it_stopped(tiny):
    """SIGKILL a real `genrec train-recommender` process after its first checkpoints, rerun the same
    command: it resumes and ends with the same weights as an uninterrupted run."""
    assert main(_cli_train_args(tiny, tiny / "full")) == 0
    args = _cli_train_args(tiny, tiny / "killed")
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    process = subprocess.Popen([sys.executable, "-m", "genrec.cli", *args], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    state_file = tiny / "killed" / "checkpoint" / "trainer_state.json"
    deadline = time.time() + 120
    while time.time() < deadline and process.poll() is None:
        if state_file.is_file() and json.loads(state_file.read_text())["step"] >= 10:
            break
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    killed_at = json.loads(state_file.read_text())["step"]
    assert 10 <= killed_at < 40 and not (tiny / "killed" / "genrec.json").exists()
    assert main(args) == 0
    assert json.loads((tiny / "killed" / "genrec.json").read_text())["steps"] == 40
    a = Recommender.load(tiny / "full").model.state_dict()
    b = Recommender.load(tiny / "killed").model.state_dict()
    for name in a:
        torch.testing.assert_close(a[name], b[name], msg=name)
    assert main(args) == 0  # a finished run is not repeated


def test_missing_inputs_and_bad_options_are_clear_errors(tiny, capsys):
    args = _cli_train_args(tiny, tiny / "out", steps=4)
    cases = [
        (["--dataset", str(tiny / "nowhere")], "not a prepared dataset"),
        (["--tokenizer", str(tiny / "nowhere")], "not a tokenizer artifact"),
        (["--tokenizer", str(write_tokenizer(tiny / "small", num_items=20))], "SIDs for 20 items"),
    ]
    for extra, message in cases:
        assert main(args + extra) == 2
        assert message in capsys.readouterr().err
    (tiny / "bad.json").write_text(json.dumps({"train": {"learning_rate": 1}}))
    assert main(args + ["--config", str(tiny / "bad.json")]) == 2
    assert "unknown option" in capsys.readouterr().err
    assert main(["evaluate", "--model", str(tiny / "nowhere"), "--dataset", str(tiny / "data")]) == 2
    assert "not a trained recommender" in capsys.readouterr().err
    assert main(["recommend", "--model", str(tiny / "nowhere"), "--dataset", str(tiny / "data"), "--user", "1"]) == 2
    assert "not a trained recommender" in capsys.readouterr().err

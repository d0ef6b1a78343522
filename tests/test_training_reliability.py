"""Training under faults and misuse: the checkpoint's best model, state and log change together, a
resume with other settings is refused, the time budget holds before the first validation is
timed, one-pass training works on a wrapped (DDP) model inside autocast, and --restart deletes
only a training output."""

import json
import types

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from genrec.cli import main
from genrec.core.errors import GenrecError
from genrec.core.sharding import release_process_group
from genrec.data_prep.dataset import load_processed_dataset
from genrec.recommender import train as train_module
from genrec.recommender import trainer as trainer_module
from genrec.recommender.item_causal import build_sequence_examples, one_pass_loss
from genrec.recommender.model import RecommenderConfig
from genrec.recommender.recommender import Recommender
from genrec.recommender.train import train_recommender
from genrec.recommender.train_config import TrainConfig
from genrec.tokenizer.artifact import load_semantic_ids
from tests.recommender_fixtures import Killed, train_until_killed, write_dataset, write_tokenizer
from tests.test_item_causal import setup as item_causal_setup

TINY = RecommenderConfig(num_encoder_layers=1, num_decoder_layers=1, d_model=16, num_heads=2, d_kv=8, d_ff=32,
                         dropout=0.1, max_history=5)


@pytest.fixture
def tiny(tmp_path):
    write_dataset(tmp_path / "data")
    write_tokenizer(tmp_path / "tok")
    return tmp_path


def _train(root, out, model=TINY, **options):
    settings = {"batch_size": 16, "max_steps": 12, "eval_every": 4, "eval_users": 0, "eval_beams": 10,
                "patience": 100, "warmup_steps": 2, "lr": 3e-3, **options}
    return train_recommender(load_processed_dataset(root / "data"), load_semantic_ids(root / "tok"), out, model,
                             TrainConfig(**settings), progress=False)


def _improving_validation(monkeypatch):
    """Every validation scores higher than the last, so each one keeps a new best model."""
    calls = {"n": 0}

    def evaluate(self, dataset, split, users=None, beams=30, **kwargs):
        calls["n"] += 1
        return {"recall@10": 0.1 * calls["n"], "recall@10_se": 0.0, "ndcg@10": 0.1 * calls["n"], "ndcg@10_se": 0.0}

    monkeypatch.setattr(Recommender, "evaluate", evaluate)


def test_a_crash_while_checkpointing_leaves_best_and_state_of_the_same_step(tiny, monkeypatch):
    _improving_validation(monkeypatch)
    writes = {"n": 0}
    original = trainer_module.atomic_write_json

    def write_json(path, obj):  # the state file of the second checkpoint (step 8) is never written
        writes["n"] += 1
        if writes["n"] == 2:
            raise Killed
        return original(path, obj)

    monkeypatch.setattr(trainer_module, "atomic_write_json", write_json)
    with pytest.raises(Killed):
        _train(tiny, tiny / "model")
    checkpoint = tiny / "model" / "checkpoint"
    state = json.loads((checkpoint / "trainer_state.json").read_text())
    assert state["step"] == state["best_step"] == 4
    # best_step == step: the kept best model is the checkpoint's own model, weight for weight
    best = load_file(checkpoint / "best" / "model.safetensors")
    current = torch.load(checkpoint / "state" / "pytorch_model.bin", weights_only=True)
    for name, tensor in best.items():
        torch.testing.assert_close(tensor, current[name], rtol=0, atol=0, msg=name)
    log = [json.loads(line) for line in (checkpoint / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log if "valid" in r] == [4]


def _count_steps(monkeypatch) -> dict:
    original = torch.optim.AdamW.step
    calls = {"n": 0}

    def step(self, *args, **kwargs):
        calls["n"] += 1
        return original(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.AdamW, "step", step)
    return calls


def test_an_interrupted_checkpoint_swap_is_undone_on_resume(tiny, monkeypatch):
    from genrec.core import io

    _train(tiny, tiny / "full")
    original = io.os.replace
    calls = {"n": 0}

    def replace(src, dst):  # the second checkpoint's swap dies between its two renames
        if str(src).endswith("/checkpoint") and str(dst).endswith(".checkpoint.old"):
            calls["n"] += 1
            if calls["n"] == 1:
                original(src, dst)
                raise Killed
        return original(src, dst)

    monkeypatch.setattr(io, "_exchange", lambda a, b: False)  # a system without an atomic exchange
    monkeypatch.setattr(io.os, "replace", replace)
    with pytest.raises(Killed):
        _train(tiny, tiny / "resumed")
    monkeypatch.undo()
    assert not (tiny / "resumed" / "checkpoint").exists() and (tiny / "resumed" / ".checkpoint.old").is_dir()
    steps = _count_steps(monkeypatch)
    assert _train(tiny, tiny / "resumed").step == 12
    assert steps["n"] == 8  # resumed from the step-4 checkpoint, not from scratch
    a = Recommender.load(tiny / "full").model.state_dict()
    b = Recommender.load(tiny / "resumed").model.state_dict()
    for name in a:
        torch.testing.assert_close(a[name], b[name], msg=name)
    full, resumed = ((tiny / name / "metrics.jsonl").read_text().splitlines() for name in ("full", "resumed"))
    strip = lambda lines: [{k: v for k, v in json.loads(x).items() if k != "seconds"} for x in lines]  # noqa: E731
    assert strip(full) == strip(resumed)


def _checkpoint_at_step_4(tiny, monkeypatch):
    train_until_killed(monkeypatch, lambda: _train(tiny, tiny / "model"), kill_at_step=6)


def test_resume_refuses_changed_settings_and_names_them(tiny, monkeypatch):
    _checkpoint_at_step_4(tiny, monkeypatch)
    for options, named in [({"batch_size": 8, "lr": 1e-3}, ["batch_size 16 -> 8", "lr 0.003 -> 0.001"]),
                           ({"seed": 1}, ["seed 0 -> 1"]), ({"eval_every": 3}, ["eval_every 4 -> 3"])]:
        with pytest.raises(GenrecError) as error:
            _train(tiny, tiny / "model", **options)
        message = str(error.value)
        assert "\n" not in message and all(name in message for name in named) and "--restart" in message
    with pytest.raises(GenrecError, match=r"d_model 16 -> 32"):
        _train(tiny, tiny / "model", model=RecommenderConfig(**{**vars(TINY), "d_model": 32}))
    # How long and on how many threads may change: the run finishes.
    state = _train(tiny, tiny / "model", time_budget_minutes=60, threads=1)
    assert state.step == 12 and state.train_config.time_budget_minutes == 60


def test_the_budget_holds_before_the_first_validation_is_timed(tiny, monkeypatch):
    """A fake clock: a step costs 0.125 s, a validation 1/32 s per user (40 users: 1.25 s), the
    budget 3 s, and no validation before the stop. The run must end, final validation included,
    inside the budget (without an estimate it trains to 3 s, then validates to 4.25 s)."""
    clock = {"now": 0.0}
    monkeypatch.setattr(trainer_module, "time", types.SimpleNamespace(perf_counter=lambda: clock["now"]))
    original_step, original_evaluate = torch.optim.AdamW.step, Recommender.evaluate

    def step(self, *args, **kwargs):
        clock["now"] += 0.125
        return original_step(self, *args, **kwargs)

    def evaluate(self, dataset, split, users=None, *args, **kwargs):
        clock["now"] += (dataset.num_users if users is None else len(users)) / 32
        return original_evaluate(self, dataset, split, users, *args, **kwargs)

    monkeypatch.setattr(torch.optim.AdamW, "step", step)
    monkeypatch.setattr(Recommender, "evaluate", evaluate)
    state = _train(tiny, tiny / "model", max_steps=1000, eval_every=1000, time_budget_minutes=3 / 60)
    assert state.stop_reason == "time budget" and state.step > 0
    assert state.train_seconds <= 3.0


def test_validation_time_estimate_scales_one_batch_to_all_users(tiny, monkeypatch):
    clock = {"now": 0.0}
    monkeypatch.setattr(trainer_module, "time", types.SimpleNamespace(perf_counter=lambda: clock["now"]))
    monkeypatch.setattr(trainer_module, "ESTIMATE_USERS", 10)
    seen = []

    def evaluate(self, dataset, split, users=None, beams=30, **kwargs):
        seen.append(len(users))
        clock["now"] += len(users) / 10
        return {"recall@10": 0.0, "recall@10_se": 0.0, "ndcg@10": 0.0, "ndcg@10_se": 0.0}

    monkeypatch.setattr(Recommender, "evaluate", evaluate)
    state = _train(tiny, tiny / "model", max_steps=1, eval_every=1000, time_budget_minutes=10)
    assert seen == [10, 40]  # the estimate on one batch of 10, then the real validation of all 40
    assert state.eval_seconds == pytest.approx(4.0)


def _item_causal_batch(tmp_path):
    dataset, model, builder = item_causal_setup(tmp_path)
    sequences = [(u, dataset.train_sequence(u)) for u in range(1, dataset.num_users + 1)]
    examples = build_sequence_examples(builder, sequences)
    return model, examples.batch(np.arange(len(examples.lengths)))


def test_one_pass_loss_runs_on_a_ddp_wrapped_model(tmp_path):
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    model, batch = _item_causal_batch(tmp_path)
    expected = one_pass_loss(model, batch)
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'rendezvous'}", rank=0, world_size=1)
    try:
        wrapped = DistributedDataParallel(model)
        assert not hasattr(wrapped, "get_encoder")
        loss = one_pass_loss(wrapped, batch)
        loss.backward()
        del wrapped  # the reducer must go before its process group (release_process_group)
    finally:
        release_process_group()
    assert not dist.is_initialized()
    torch.testing.assert_close(loss, expected)
    assert all(p.grad is not None for p in model.get_encoder().parameters() if p.requires_grad)


def test_release_process_group_frees_a_ddp_wrapper_in_a_cycle_before_the_group(tmp_path):
    """The hang's cause: a DDP wrapper kept alive by a reference cycle outlived its process group,
    and the collector later freed it (the gloo destructor joined threads inside gc). Releasing
    collects first, so no wrapper is left to be freed after the group is gone."""
    import gc
    import weakref

    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'rendezvous'}", rank=0, world_size=1)
    wrapped = DistributedDataParallel(torch.nn.Linear(3, 2))
    wrapped.cycle = [wrapped]  # only the collector can free it now
    alive = weakref.ref(wrapped)
    del wrapped
    gc.disable()  # no automatic collection between here and the release
    try:
        assert alive() is not None
        release_process_group()
        assert alive() is None and not dist.is_initialized()
    finally:
        gc.enable()


@pytest.fixture
def fresh_accelerate_state():
    """accelerate keeps one process-wide state, whose mixed precision the first Accelerator fixes."""
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)
    yield
    AcceleratorState._reset_state(reset_partial_state=True)


def test_one_pass_training_runs_inside_autocast(tiny, monkeypatch, fresh_accelerate_state):
    seen = []
    original = train_module.one_pass_loss

    def loss(model, batch):
        seen.append(torch.is_autocast_enabled("cpu"))
        return original(model, batch)

    monkeypatch.setattr(train_module, "one_pass_loss", loss)
    model = RecommenderConfig(**{**vars(TINY), "encoder_attention": "item_causal"})
    _train(tiny, tiny / "model", model=model, max_steps=2, eval_every=2, mixed_precision="bf16")
    assert seen and all(seen)


def _restart_args(tiny, out):
    return ["train-recommender", "--dataset", str(tiny / "data"), "--tokenizer", str(tiny / "tok"), "--out",
            str(out), "--restart", "--max-steps", "2", "--eval-every", "2", "--batch-size", "8",
            "--eval-users", "5", "--fusion-weights", "0", "--d-model", "16", "--d-ff", "32", "--encoder-layers", "1",
            "--decoder-layers", "1", "--no-progress", "--t5-only"]


def test_restart_deletes_only_a_training_output(tiny, capsys):
    mine = tiny / "mine"
    (mine / "notes").mkdir(parents=True)
    (mine / "notes" / "thesis.tex").write_text("years of work")
    assert main(_restart_args(tiny, mine)) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("genrec train-recommender: error: --restart:") and "\n" not in err
    assert "not a genrec training output" in err and (mine / "notes" / "thesis.tex").is_file()
    (tiny / "a-file").write_text("x")
    assert main(_restart_args(tiny, tiny / "a-file")) == 2 and (tiny / "a-file").read_text() == "x"
    capsys.readouterr()

    (tiny / "empty").mkdir()
    (tiny / "killed-early" / ".checkpoint.tmp").mkdir(parents=True)  # killed before its first checkpoint
    for out in (tiny / "empty", tiny / "killed-early", tiny / "missing"):
        assert main(_restart_args(tiny, out)) == 0, capsys.readouterr().err
        assert (out / "genrec.json").is_file()
    (tiny / "missing" / "extra.txt").write_text("a trained model's folder, with a note in it")
    assert main(_restart_args(tiny, tiny / "missing")) == 0
    assert not (tiny / "missing" / "extra.txt").exists() and (tiny / "missing" / "genrec.json").is_file()

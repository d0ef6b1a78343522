"""CPU time-to-quality: the whole pipeline on one dataset under a wall-clock budget (issue 5).

Run from the repository root:

    python -m bench.time_to_quality --raw-dir ../shared/datasets/amazon-beauty \
        --config bench/configs/amazon-beauty-cpu-60min.json --work /tmp/ttq --name amazon-beauty-cpu-60min

Runs the stages in this process through ``genrec.pipeline``, in a fresh data folder under --work
(so nothing is cached: the item texts are embedded again), timing every stage:

    prepare(PrepareConfig(NAME, raw_dir=RAW))
    embed(EmbedConfig(...))
    train_tokenizer(tokenizer_config_from(...))   config "tokenizer": {"method": ..., "collaborative_weight": ..., options}
    train_recommender(RecommenderTrainingConfig.from_options(train=..., model=...))   config "train" and "model"
    choose_fusion(...)   the fusion weights, on sampled validation users (as train-recommender does)
    evaluate(EvaluateConfig(split="test"))   with those weights, as `genrec evaluate` does; it also
                                             reports each fused part alone, the prior and popularity

With a "sasrec" section in the config ({"train": ..., "model": ..., "text": true}), `genrec
train-sasrec` runs in a child process beside train_recommender (one core each), the fusion
weights are chosen over the prior and SASRec together, and two more test rows are read, each
once: SASRec with its own prior weight (and alone), and the T5 model fused with SASRec but not
the prior (the best such setting on validation): does learning beat counting?

Writes NAME.json (stage times, test metrics, the validation curve), NAME.md and NAME.png (validation
NDCG@10 on the periodic sample of users against pipeline wall time) into --out, which defaults to
the --work folder: nothing goes into the repository unless asked. To update the committed results,
pass ``--out bench/results`` on purpose.

Rerunning after an interruption skips finished stages (recorded in WORK/time_to_quality_state.json;
train_recommender resumes from its checkpoint by itself); the report then sums the stage times of
all attempts. ``--redo-from STAGE`` runs STAGE and every later stage again on what the earlier ones
left (e.g. ``--redo-from choose-fusion``: new decoding choices and test rows for the same trained
models); the report says so.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

from bench.common import markdown_table, run_script, script_parser, write_report
from genrec.commands.arguments import whole_number
from genrec.core.errors import GenrecError
from genrec.core.io import atomic_write_json, read_json

STATE_FILE = "time_to_quality_state.json"
CONFIG_KEYS = ("tokenizer", "train", "model", "sasrec")
SASREC_EVAL_FILE = "eval_test_sasrec.json"
LEARNED_EVAL_FILE = "eval_test_learned.json"
# The same decodings with the user's own history items allowed back in: papers that do not mask
# history (e.g. TIGER's and RPG's code) are compared with these rows.
HISTORY_KEPT_FILE = "eval_test_history_kept.json"
SASREC_HISTORY_KEPT_FILE = "eval_test_sasrec_history_kept.json"
TEST_KEYS = ("recall@5", "recall@10", "recall@20", "ndcg@5", "ndcg@10", "ndcg@20", "mrr")


def main(argv: list[str] | None = None) -> int:
    return run_script("bench.time_to_quality", build_parser(), _run, argv)


def read_config(path: str | Path) -> dict:
    """The run's options: "tokenizer" ({"method": ..., method options}), "train" and "model"
    (recommender.train.TrainConfig / recommender.model.RecommenderConfig fields)."""
    from genrec.core.config import load_config_file

    config = load_config_file(path)
    if "tokenizer_args" in config:
        raise GenrecError(f"{path}: \"tokenizer_args\" (CLI flags) is gone; write the options as a dict, e.g. "
                          "\"tokenizer\": {\"method\": \"r3vae\", \"codebook_size\": 256}")
    unknown = sorted(set(config) - set(CONFIG_KEYS))
    if unknown:
        raise GenrecError(f"{path}: unknown key(s) {', '.join(unknown)}; expected {', '.join(CONFIG_KEYS)}")
    return config


def with_seed(config: dict, seed: int) -> dict:
    """``config`` with one seed for every trained part: the tokenizer, the T5 model, SASRec (and so the
    validation users the decoding choices are made on), for a repeat of the same run."""
    seeded = {**config, "tokenizer": {**config.get("tokenizer", {}), "seed": seed},
              "train": {**config.get("train", {}), "seed": seed}}
    if "sasrec" in config:
        seeded["sasrec"] = {**config["sasrec"], "train": {**config["sasrec"].get("train", {}), "seed": seed}}
    return seeded


@dataclasses.dataclass
class FusionChoice:
    dataset: str
    users: int = 5000
    seed: int = 0


def choose_fusion(config: FusionChoice) -> None:
    """The T5 model's decoding policy and, when a SASRec was trained, SASRec's own (its prior weight
    and history rule, as train-sasrec chose them: chosen again here so that --redo-from choose-fusion
    redoes every decoding choice)."""
    from genrec import pipeline as gp

    data = Path(config.dataset)
    if (data / gp.SASREC_DIR / "genrec.json").is_file():
        gp.choose_fusion(data / gp.SASREC_DIR, data, {"prior": gp.FUSION_GRIDS["prior"]}, config.users, config.seed)
    gp.choose_fusion(data / "recommender", data, gp.FUSION_GRIDS, config.users, config.seed)


def evaluate_learned(config) -> None:
    """Test of the T5 model fused with SASRec alone: the best validation setting without the prior."""
    from genrec import pipeline as gp

    grid = read_json(Path(config.dataset) / "recommender" / "genrec.json")["fusion"]["grid"]
    best = max((row for row in grid if row["weights"].get("prior", 0.0) == 0.0), key=lambda row: row["ndcg@10"])
    gp.evaluate(dataclasses.replace(config, fusion=best["weights"], exclude_seen=best.get("exclude_seen", False)))


def pipeline_stages(dataset_name: str, raw_dir: str, dataset: Path, config: dict) -> list[tuple[str, object, object]]:
    """(stage name, pipeline function, its config) in order."""
    from genrec import pipeline as gp

    data = str(dataset)
    sasrec = config.get("sasrec")  # trained beside the T5, as `genrec train-recommender` does by default
    beside = None if sasrec is None else gp.SASRecBeside.from_options(train=dict(sasrec.get("train", {})),
                                                         model=dict(sasrec.get("model", {})),
                                                         text=sasrec.get("text", True))
    recommender = gp.RecommenderTrainingConfig.from_options(data, train=dict(config.get("train", {})),
                                               model=dict(config.get("model", {})), progress=False,
                                               fusion_grids={"prior": (0.0,)},  # chosen below
                                               sasrec_beside=beside)
    stages = [
        ("prepare", gp.prepare, gp.PrepareConfig(dataset_name, out=data, raw_dir=raw_dir)),
        ("embed", gp.embed, gp.EmbedConfig(data, progress=False)),
        ("train-tokenizer", gp.train_tokenizer,
         gp.tokenizer_config_from(config.get("tokenizer", {}), dataset=data, progress=False)),
        ("train-recommender" if sasrec is None else "train-recommender+sasrec", gp.train_recommender, recommender),
    ]
    stages += [
        ("choose-fusion", choose_fusion, FusionChoice(data, seed=recommender.train.seed)),
        ("evaluate", gp.evaluate, gp.EvaluateConfig(data, split="test", progress=False)),
    ]
    if sasrec is not None:
        stages += [
            ("evaluate-sasrec", gp.evaluate, gp.EvaluateConfig(
                data, model=str(dataset / gp.SASREC_DIR), split="test", progress=False,
                output=str(dataset / "recommender" / SASREC_EVAL_FILE))),
            ("evaluate-learned", evaluate_learned, gp.EvaluateConfig(
                data, split="test", progress=False, output=str(dataset / "recommender" / LEARNED_EVAL_FILE))),
            ("evaluate-sasrec-history-kept", gp.evaluate, gp.EvaluateConfig(
                data, model=str(dataset / gp.SASREC_DIR), split="test", progress=False, exclude_seen=False,
                output=str(dataset / "recommender" / SASREC_HISTORY_KEPT_FILE))),
        ]
    stages.append(("evaluate-history-kept", gp.evaluate, gp.EvaluateConfig(
        data, split="test", progress=False, exclude_seen=False, output=str(dataset / "recommender" / HISTORY_KEPT_FILE))))
    return stages


def load_state(state_file: Path) -> dict:
    state = read_json(state_file) if state_file.is_file() else {}
    for key, empty in (("done", []), ("seconds", {}), ("calls", {})):
        state.setdefault(key, empty)
    return state


def describe_call(function, config) -> str:
    """``function(Config(...))`` with the required fields and those that differ from the defaults."""
    def default(f):
        if f.default_factory is not dataclasses.MISSING:
            return f.default_factory()
        return f.default

    shown = ", ".join(f"{f.name}={getattr(config, f.name)!r}" for f in dataclasses.fields(config)
                      if getattr(config, f.name) != default(f))
    return f"{function.__name__}({type(config).__name__}({shown}))"


def run_stage(name: str, function, config, state: dict, state_file: Path) -> None:
    """Run one stage unless an earlier attempt finished it; its time is added up across attempts
    (also when it fails or is interrupted) and saved in ``state_file``."""
    if name in state["done"]:
        print(f"[{name}] done in an earlier attempt ({state['seconds'][name]:.0f} s)")
        return
    call = describe_call(function, config) if dataclasses.is_dataclass(config) else f"{function.__name__}({config!r})"
    print(f"[{name}] {call}", flush=True)
    started = time.perf_counter()
    try:
        function(config)
    finally:
        state["seconds"][name] = state["seconds"].get(name, 0.0) + time.perf_counter() - started
        state["calls"][name] = call
        atomic_write_json(state_file, state)
    state["done"].append(name)
    atomic_write_json(state_file, state)


def redo_from(first: str, names: list[str], state: dict, state_file: Path) -> None:
    """Forget ``first`` and every stage after it (their times too), so they run again; the stages
    redone are kept in the state as "redone" for the report."""
    if first not in names:
        raise GenrecError(f"--redo-from {first}: no such stage (stages: {', '.join(names)})")
    missing = [name for name in names[:names.index(first)] if name not in state["done"]]
    if missing:
        raise GenrecError(f"--redo-from {first}: earlier stages have not finished ({', '.join(missing)}); "
                          "run without --redo-from first")
    again = names[names.index(first):]
    state["done"] = [name for name in state["done"] if name not in again]
    for name in again:
        state["seconds"].pop(name, None)
    state["redone"] = sorted(set(state.get("redone", [])) | set(again), key=names.index)
    atomic_write_json(state_file, state)


def plot_curve(log: list[dict], train_start: float, stage_ends: dict, test: dict, title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    evals = [r for r in log if "valid" in r]
    minutes = [(train_start + r["seconds"]) / 60 for r in evals]
    fig, axis = plt.subplots(figsize=(7, 4))
    axis.plot(minutes, [r["valid"]["ndcg@10"] for r in evals], marker="o", label="validation NDCG@10 (sampled users)")
    axis.plot(minutes, [r["valid"]["recall@10"] for r in evals], marker=".", alpha=0.6, label="validation Recall@10")
    end = stage_ends["evaluate"] / 60
    axis.scatter([end, end], [test["ndcg@10"], test["recall@10"]], marker="*", s=120, color="black",
                 label="test NDCG@10 / Recall@10 (all users)", zorder=3)
    for name, seconds in stage_ends.items():
        axis.axvline(seconds / 60, color="grey", lw=0.6, ls=":")
        axis.text(seconds / 60, axis.get_ylim()[1] * 0.98, name, rotation=90, va="top", ha="right", fontsize=7)
    axis.set(xlabel="pipeline wall time (minutes)", ylabel="metric", title=title)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def plot_title(dataset_name: str, hardware: dict) -> str:
    where = hardware["gpu"] or f"{hardware['cores']} CPU cores"
    return f"{dataset_name} on {where}: quality vs wall time"


def build_parser():
    parser = script_parser("bench.time_to_quality", __doc__)
    parser.add_argument("--dataset-name", default="amazon-beauty", help="dataset preset (genrec prepare NAME)")
    parser.add_argument("--raw-dir", required=True)
    parser.add_argument("--config", required=True, help="JSON with \"tokenizer\", \"train\" and \"model\" options")
    parser.add_argument("--work", required=True, help="scratch data root (datasets, state file; the report too unless --out)")
    parser.add_argument("--out", help="report folder (default: --work; pass bench/results to update the repo's)")
    parser.add_argument("--name", default="time-to-quality")
    parser.add_argument("--seed", type=whole_number(0), help="one seed for the tokenizer, the T5 model and SASRec "
                        "(default: the config's, else 0); a repeat of the run for a mean over seeds")
    parser.add_argument("--redo-from", metavar="STAGE",
                        help="run this stage and every later one again (e.g. choose-fusion: decoding only)")
    return parser


def _run(args: argparse.Namespace, command: str) -> int:
    """Run (or skip) every stage, then write the report from what they left on disk."""
    import genrec.core.layout as layout
    from genrec.core.hardware import hardware, hardware_line

    config = read_config(args.config)
    if args.seed is not None:
        config = with_seed(config, args.seed)
    work = Path(args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    layout.DATA_ROOT = work  # the "last prepared dataset" marker goes here, not into ./data
    dataset = work / args.dataset_name
    state_file = work / STATE_FILE
    state = load_state(state_file)
    state.setdefault("commands", []).append(command)  # every attempt's command line, for the report
    stages = pipeline_stages(args.dataset_name, str(Path(args.raw_dir).resolve()), dataset, config)
    if args.redo_from:
        redo_from(args.redo_from, [name for name, _, _ in stages], state, state_file)
    for name, function, stage_config in stages:
        run_stage(name, function, stage_config, state, state_file)

    ends, total = {}, 0.0
    for name, _, _ in stages:
        total += state["seconds"][name]
        ends[name] = total
    train_start = ends["train-tokenizer"]
    model = dataset / "recommender"
    log = read_log(model)
    test, meta = read_json(model / "eval_test.json"), read_json(model / "genrec.json")
    rows = test_rows(model, test)
    baselines = ("popularity", "transition_prior", "alone")
    info = hardware()
    report = {
        "command": command, "config": config, "hardware": info,
        "stage_seconds": state["seconds"], "stage_calls": state["calls"], "total_seconds": total,
        "commands": state["commands"], "redone": state.get("redone", []),
        "test": {k: v for k, v in test.items() if k not in baselines},
        "test_rows": [{"decoding": label, **{k: metrics[k] for k in TEST_KEYS}} for label, metrics in rows],
        "popularity_test": test["popularity"], "transition_prior_test": test["transition_prior"],
        "fusion": meta.get("fusion"),
        "recommender": {k: meta.get(k) for k in ("recipe", "best_step", "best_valid_ndcg@10", "stop_reason", "steps",
                                                 "epochs", "train_seconds", "train_config", "model_config")},
        "torch_threads": torch_threads(),
        "validation_curve": [{"pipeline_seconds": round(train_start + r["seconds"], 1), "step": r["step"], **r["valid"]}
                             for r in log if "valid" in r],
    }
    sasrec_dir = dataset / "sasrec"
    if (sasrec_dir / "genrec.json").is_file():
        sasrec_meta = read_json(sasrec_dir / "genrec.json")
        report["sasrec"] = {k: sasrec_meta.get(k) for k in ("best_step", "best_valid_ndcg@10", "stop_reason", "steps",
                                                            "epochs", "train_seconds", "train_config", "model_config",
                                                            "fusion")}
        report["sasrec_validation_curve"] = [{"train_seconds": r["seconds"], "step": r["step"], **r["valid"]}
                                             for r in read_log(sasrec_dir) if "valid" in r]
    out = Path(args.out) if args.out else work
    out.mkdir(parents=True, exist_ok=True)
    plot_curve(log, train_start, ends, test, plot_title(args.dataset_name, info), out / f"{args.name}.png")
    lines = [f"# Time to quality: {args.dataset_name} on {hardware_line(info)}", "", f"Command: `{command}`", ""]
    if state.get("redone"):
        earlier = [c for c in state["commands"][:-1] if c != command]
        lines += [f"Stages {', '.join(state['redone'])} were run again (`--redo-from`) on what the earlier stages "
                  "of the same --work folder left" + (f" (earlier commands: {'; '.join(f'`{c}`' for c in earlier)})"
                                                       if earlier else "") + ".", ""]
    lines += markdown_table(["stage", "pipeline call", "seconds"],
                            [[n, f"`{state['calls'][n]}`", f"{state['seconds'][n]:.0f}"] for n, _, _ in stages]
                            + [["**total**", "", f"**{total:.0f}** ({total / 60:.1f} min)"]])
    lines += [""] + markdown_table(["test (all users, full catalog)", *(k.replace("recall", "Recall").replace(
        "ndcg", "NDCG").replace("mrr", "MRR") for k in TEST_KEYS)],
        [[label, *(f"{metrics[k]:.4f}" for k in TEST_KEYS)] for label, metrics in rows])
    fusion = meta.get("fusion")
    if fusion:
        tried = "; ".join(f"{_weights(row['weights'])}{', history left out' if row.get('exclude_seen') else ''}: "
                          f"{row['ndcg@10']:.4f} ± {row['ndcg@10_se']:.4f}" for row in fusion["grid"])
        rule = ("leave each user's own history items out" if test.get("exclude_seen") else
                "may recommend items of the user's history")
        lines += ["", f"Fusion weights and the history rule chosen on {fusion['users']:,} sampled validation users by "
                      f"NDCG@10 (coordinate search; {tried}). The rows {rule}, as chosen, unless labelled otherwise."]
    lines += ["", f"T5 recommender: {meta['steps']} steps ({meta['epochs']} epochs) in {meta['train_seconds']:.0f} s, "
              f"best validation NDCG@10 {meta['best_valid_ndcg@10']:.4f} (sampled users) at step {meta['best_step']} "
              f"(stopped by: {meta.get('stop_reason')}); torch threads: {torch_threads()}.", "",
              f"Recipe `{meta.get('recipe')}` as trained: model `{json.dumps(meta['model_config'])}`, "
              f"train `{json.dumps(meta['train_config'])}`.", ""]
    if "sasrec" in report:
        sas = report["sasrec"]
        lines += [f"SASRec: {sas['steps']} steps ({sas['epochs']} epochs) in {sas['train_seconds']:.0f} s, best "
                  f"validation NDCG@10 {sas['best_valid_ndcg@10']:.4f} at step {sas['best_step']} (stopped by: "
                  f"{sas['stop_reason']}); model `{json.dumps(sas['model_config'])}`, train "
                  f"`{json.dumps(sas['train_config'])}`.", "",
                  f"![validation Recall@10 of both models against training minutes]({args.name}-learning.png)", ""]
        plot_learning(log, read_log(sasrec_dir), out / f"{args.name}-learning.png", args.dataset_name)
    lines += [f"![validation NDCG@10 against wall time]({args.name}.png)", ""]
    write_report(out, args.name, report, "\n".join(lines))
    return 0


def read_log(model: Path) -> list[dict]:
    return [json.loads(line) for line in (model / "metrics.jsonl").read_text().splitlines()]


def _weights(weights: dict) -> str:
    shown = [f"{name} {w:g}" for name, w in sorted(weights.items()) if w > 0]
    return ", ".join(shown) or "model alone"


def test_rows(model: Path, test: dict) -> list[tuple[str, dict]]:
    """(label, test metrics) per decoding, each configuration read once from its evaluate output; a
    row whose history rule differs from the fused row's says so."""
    def rule(other: dict) -> str:
        if bool(other.get("exclude_seen")) == bool(test.get("exclude_seen")):
            return ""
        return ", history left out" if other.get("exclude_seen") else ", history kept"

    rows = [(f"genrec fused ({_weights(test['fusion'])})" if test["fusion"] else "genrec T5 model alone", test)]
    if (model / LEARNED_EVAL_FILE).is_file():
        learned = read_json(model / LEARNED_EVAL_FILE)
        rows.append((f"T5 + SASRec, no prior ({_weights(learned['fusion'])}{rule(learned)})", learned))
    if (model / SASREC_EVAL_FILE).is_file():
        sasrec = read_json(model / SASREC_EVAL_FILE)
        if sasrec["fusion"]:
            rows.append((f"SASRec + prior ({_weights(sasrec['fusion'])}{rule(sasrec)})", sasrec))
        rows.append((f"SASRec alone{rule(sasrec)}", sasrec["alone"].get("model", sasrec)))
    if test["fusion"]:
        rows.append(("T5 model alone", test["alone"]["model"]))
    rows += [("transition prior alone", test["transition_prior"]), ("popularity", test["popularity"])]
    if test.get("exclude_seen"):  # the rows papers that keep history compare with
        rows += history_kept_rows(model, test)
    return rows


def history_kept_rows(model: Path, test: dict) -> list[tuple[str, dict]]:
    """Fused, SASRec alone and T5 alone with the user's own history items allowed back in (same
    weights as chosen), from the history-kept evaluations when they were run."""
    rows = []
    if (model / HISTORY_KEPT_FILE).is_file():
        kept = read_json(model / HISTORY_KEPT_FILE)
        if kept["fusion"]:
            rows.append((f"genrec fused ({_weights(kept['fusion'])}), history kept", kept))
    if (model / SASREC_HISTORY_KEPT_FILE).is_file():
        sasrec = read_json(model / SASREC_HISTORY_KEPT_FILE)
        rows.append(("SASRec alone, history kept", sasrec["alone"].get("model", sasrec)))
    if (model / HISTORY_KEPT_FILE).is_file():
        kept = read_json(model / HISTORY_KEPT_FILE)
        rows.append(("T5 model alone, history kept", kept["alone"].get("model", kept)))
    return rows


def plot_learning(t5_log: list[dict], sasrec_log: list[dict], path: Path, dataset_name: str) -> None:
    """Validation Recall@10 (± s.e., sampled users) of both learned models against training minutes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axis = plt.subplots(figsize=(7, 4))
    for label, log in (("T5 generative (SIDs, beam)", t5_log), ("SASRec", sasrec_log)):
        evals = [r for r in log if "valid" in r]
        axis.errorbar([r["seconds"] / 60 for r in evals], [r["valid"]["recall@10"] for r in evals],
                      yerr=[r["valid"].get("recall@10_se", 0.0) for r in evals], marker="o", capsize=2, label=label)
    axis.set(xlabel="training minutes", ylabel="validation Recall@10", title=f"{dataset_name}: the two learned models")
    axis.grid(alpha=0.3)
    axis.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())

"""SASRec training steps per second: one padded batch against micro-batches and length bucketing.

    python -m bench.sasrec_speed --dataset data/amazon-beauty [--steps 40] [--out bench/results --name sasrec-speed-beauty]

Every variant runs SASRec's real training step (``recommender.sasrec_train.SASRecTask.step``:
sampled softmax over the shared negatives, backward, AdamW) from the same initial weights on the
same dataset, one torch thread. ``padded`` (micro_batches 1) is what the step cost before
micro-batches: each random batch padded to its longest row; ``micro-N``: the same random batch cut
into at most N micro-batches of similar length (the same gradient, ``tests/test_sasrec.py``);
``bucketing``: length-bucketed batches (sort_window 50), a different batch composition. The
variants take turns in rounds of ``--steps``/``--rounds`` steps so that a load change on the
machine hits them alike; the ratio is against ``padded`` in the same run.
"""

from __future__ import annotations

import time
from pathlib import Path

VARIANTS = {"padded": (1, 1), "micro-2": (2, 1), "micro-3": (3, 1), "micro-6": (6, 1), "bucketing": (1, 50)}


def measure(dataset_dir: str, steps: int, rounds: int) -> dict:
    import torch
    from accelerate import Accelerator

    from genrec import pipeline
    from genrec.data_prep.dataset import load_processed_dataset
    from genrec.recommender.sasrec_config import SASRecConfig
    from genrec.recommender.sasrec_train import SASRecTask
    from genrec.recommender.train_config import SASRecTrainConfig

    torch.set_num_threads(1)
    dataset = load_processed_dataset(dataset_dir)
    text = pipeline.embed(pipeline.EmbedConfig(dataset_dir, progress=False)).vectors
    accelerator = Accelerator(cpu=True)
    tasks, plans, optimizers = {}, {}, {}
    for name, (parts, window) in VARIANTS.items():
        torch.manual_seed(0)
        task = SASRecTask(dataset, SASRecConfig(num_items=dataset.num_items, text_dim=text.shape[1]),
                          SASRecTrainConfig(micro_batches=parts, sort_window=window), text)
        tasks[name], plans[name] = task, task.epoch_plan(0)
        optimizers[name] = torch.optim.AdamW(task.model.parameters(), lr=1e-3)
    seconds = {name: 0.0 for name in VARIANTS}
    per_round = max(1, steps // rounds)
    for round_index in range(rounds + 1):  # round 0 warms up, untimed
        for name, task in tasks.items():
            batches = plans[name][round_index * per_round:(round_index + 1) * per_round]
            task.model.train()
            started = time.perf_counter()
            for index in batches:
                task.step(task.model, index, accelerator)
                optimizers[name].step()
                optimizers[name].zero_grad(set_to_none=True)
            if round_index:
                seconds[name] += time.perf_counter() - started
    timed = per_round * rounds
    baseline = seconds["padded"] / timed
    return {name: {"ms_per_step": 1000 * s / timed, "speedup_vs_padded": baseline / (s / timed),
                   "epoch_seconds": len(plans[name]) * s / timed} for name, s in seconds.items()}


def main_run(args, command: str) -> int:
    from bench.common import markdown_table, write_report
    from genrec.core.hardware import hardware_line

    results = measure(args.dataset, args.steps, args.rounds)
    report = {"command": command, "hardware": hardware_line(), "dataset": args.dataset, "steps": args.steps,
              "results": results}
    rows = [[name, f"{r['ms_per_step']:.1f}", f"{r['speedup_vs_padded']:.2f}x", f"{r['epoch_seconds']:.0f}"]
            for name, r in results.items()]
    markdown = "\n".join([f"# SASRec training speed on {Path(args.dataset).name}", "", f"Command: `{command}`", "",
                          f"Hardware: {report['hardware']}", "",
                          *markdown_table(["variant", "ms / step", "vs padded", "s / epoch"], rows), ""])
    write_report(args.out or ".", args.name, report, markdown)
    return 0


def main(argv: list[str] | None = None) -> int:
    from bench.common import run_script, script_parser

    parser = script_parser("bench.sasrec_speed", __doc__)
    parser.add_argument("--dataset", required=True, help="prepared dataset (item embeddings cached)")
    parser.add_argument("--steps", type=int, default=40, help="timed steps per variant")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--out", help="report folder (default: current folder)")
    parser.add_argument("--name", default="sasrec-speed")
    return run_script("bench.sasrec_speed", parser, main_run, argv)


if __name__ == "__main__":
    raise SystemExit(main())

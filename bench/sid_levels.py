"""Semantic IDs level by level: what each code position tells the generative model, for several
tokenizers over one dataset (issue: why do OPQ's IDs lift the T5 alone?).

Per level l = 1..L: codes used, perplexity of the code distribution (exp of its entropy, over
items), conditional perplexity given the codes before it (how many ways the level branches, on
average, once the prefix is known), and the share of training transitions (item -> next item)
whose next item shares the current item's prefix up to level l: how much a history tells the
decoder about each step. Plus the collision suffix's largest value.

    python -m bench.sid_levels --dataset data/amazon-beauty --tokenizers r3vae=data/amazon-beauty/tokenizer \
        opq=runs/opq-tokenizer --out bench/results/sid-levels-beauty --name sid-levels
"""

from __future__ import annotations

import numpy as np

from bench.common import markdown_table, run_script, script_parser, write_report


def _entropy(counts: np.ndarray) -> float:
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


def level_statistics(codes: np.ndarray, sequences: list[list[int]]) -> list[dict]:
    """One dict per code level (the suffix excluded) of ``codes`` [items, L + 1] (item i at row i - 1)."""
    levels = codes.shape[1] - 1
    pairs = np.asarray([(a, b) for seq in sequences for a, b in zip(seq, seq[1:])], dtype=np.int64).reshape(-1, 2)
    out = []
    for level in range(levels):
        column = codes[:, level]
        _, counts = np.unique(column, return_counts=True)
        entropy = _entropy(counts)
        prefix = codes[:, :level + 1]
        _, prefix_counts = np.unique(prefix, axis=0, return_counts=True)
        before = codes[:, :level]
        conditional = entropy if level == 0 else _entropy(prefix_counts) - _entropy(np.unique(before, axis=0,
                                                                                                return_counts=True)[1])
        same = (codes[pairs[:, 0] - 1, :level + 1] == codes[pairs[:, 1] - 1, :level + 1]).all(axis=1)
        out.append({"level": level + 1, "codes_used": int(len(counts)), "perplexity": float(np.exp(entropy)),
                    "conditional_perplexity": float(np.exp(conditional)), "prefixes": int(len(prefix_counts)),
                    "next_item_shares_prefix": float(same.mean()) if len(pairs) else 0.0})
    return out


def _run(args, command: str) -> int:
    from genrec.core.errors import GenrecError
    from genrec.core.hardware import hardware_line
    from genrec.data_prep.dataset import load_processed_dataset
    from genrec.tokenizer.artifact import load_semantic_ids

    dataset = load_processed_dataset(args.dataset)
    sequences = dataset.train_sequences()
    report, rows = {"command": command, "hardware": hardware_line(), "tokenizers": {}}, []
    for spec in args.tokenizers:
        name, sep, path = spec.partition("=")
        if not sep:
            raise GenrecError(f"--tokenizers takes NAME=PATH, got {spec!r}")
        sids = load_semantic_ids(path)
        if sids.num_items != dataset.num_items:
            raise GenrecError(f"{path}: {sids.num_items} items, {args.dataset} has {dataset.num_items}")
        levels = level_statistics(sids.codes, sequences)
        report["tokenizers"][name] = {"path": path, "levels": levels, "largest_suffix": int(sids.codes[:, -1].max())}
        for row in levels:
            rows.append([name, row["level"], row["codes_used"], f"{row['perplexity']:.1f}",
                         f"{row['conditional_perplexity']:.1f}", f"{row['prefixes']:,}",
                         f"{row['next_item_shares_prefix']:.3f}"])
    markdown = "\n".join([
        f"# Semantic IDs level by level: {dataset.path}", "", f"Command: `{command}`", "",
        f"Hardware: {hardware_line()}", "",
        "Perplexity: exp(entropy) of a level's codes over items; conditional: given the codes before it. "
        "Next item shares prefix: training transitions whose next item has the same codes up to this level.", "",
        *markdown_table(["tokenizer", "level", "codes used", "perplexity", "conditional perplexity", "prefixes",
                         "next item shares prefix"], rows), ""])
    write_report(args.out, args.name, report, markdown)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = script_parser("bench.sid_levels", __doc__)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--tokenizers", nargs="+", required=True, metavar="NAME=PATH")
    parser.add_argument("--out", required=True)
    parser.add_argument("--name", default="sid-levels")
    return run_script("bench.sid_levels", parser, _run, argv)


if __name__ == "__main__":
    raise SystemExit(main())

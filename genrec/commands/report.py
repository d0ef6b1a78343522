"""How the CLI and ``genrec demo`` print results: labelled metric tables and recommendation lists."""

from __future__ import annotations

SCORE_NOTE = ("score = log-probability of the item's Semantic ID under the model (+ w x log prior of the item "
              "given the history, when fused with the item-transition prior); higher is better")
METRIC_KEYS = [f"{m}@{k}" for m in ("recall", "ndcg") for k in (5, 10, 20, 30)] + ["mrr"]


def plural(count: int, noun: str) -> str:
    """``1 item``, ``2 items``."""
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def decoder_label(fusion_weight: float) -> str:
    """What produced the ranking: the model fused with the transition prior, or the model alone."""
    return f"fused (w {fusion_weight:g})" if fusion_weight else "model alone"


def evaluation_table(result: dict, keys: list[str] = METRIC_KEYS) -> str:
    """One row per metric; columns: genrec's decoding, the transition prior alone, popularity."""
    label = decoder_label(result["fusion_weight"])
    width = max(len(label), 8)
    lines = [f"{'metric':<10} {label:>{width}} {'prior alone':>12} {'popularity':>11}"]
    for key in keys:
        lines.append(f"{key:<10} {result[key]:>{width}.4f} {result['transition_prior'][key]:>12.4f} "
                     f"{result['popularity'][key]:>11.4f}")
    lines.append(f"invalid items {result['invalid_rate']:.4f} of the recommended items (the trie admits only "
                 f"catalogue items); empty beam slots {result.get('empty_rate', 0.0):.4f}")
    lines.append("prior alone = item-transition counts from the training sequences; fused = model + w x log prior; "
                 "the model alone: --fusion-weight 0")
    return "\n".join(lines)


def fusion_line(fusion: dict | None) -> str | None:
    """The fusion weight chosen after training and each tried weight's validation NDCG@10."""
    if not fusion:
        return None
    tried = ", ".join(f"{row['weight']:g}: {row['ndcg@10']:.4f}" for row in fusion["grid"])
    return (f"fusion with the item-transition prior: weight {fusion['weight']:g} chosen on {fusion['users']:,} "
            f"validation users (NDCG@10 by weight, 0 = the model alone: {tried}); evaluate / recommend use it, "
            f"--fusion-weight 0 for the model alone")


def recommendation_lines(result) -> list[str]:
    """A ``pipeline.Recommendations`` as text: who, their history, then one line per item."""
    who = f"user {result.user} ({result.user_raw_id})" if result.user else "the given history"
    lines = [f"top {len(result.items)} for {who}, history of {plural(len(result.history), 'item')}; "
             f"last: {result.history[-1]['title'][:70]}"]
    for row in result.items:
        sid = "-".join(map(str, row["sid"]))
        lines.append(f"{row['rank']:>3}. [{row['item_id']:>6} {row['raw_id']}] {row['title'][:60]:<60} "
                     f"sid {sid:<15} score {row['score']:.3f}")
    return lines

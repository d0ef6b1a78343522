"""How the CLI and ``genrec demo`` print results: labelled metric tables and recommendation lists."""

from __future__ import annotations

SCORE_NOTE = ("score = log-probability of the item under the model (of its Semantic ID, for the T5 model) plus, "
              "when decoding is fused, w x log-probability of the item under each fused scorer (prior: "
              "item-transition counts; sasrec: the SASRec model); higher is better; \"because of X (Nx)\": the item "
              "came within 3 steps after X N times in the interactions counted")
METRIC_KEYS = [f"{m}@{k}" for m in ("recall", "ndcg") for k in (5, 10, 20, 30)] + ["mrr"]


def plural(count: int, noun: str) -> str:
    """``1 item``, ``2 items``."""
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def describe_weights(weights: dict[str, float]) -> str:
    """``prior 4, sasrec 1`` (or ``the model alone``)."""
    shown = [f"{name} {weight:g}" for name, weight in sorted(weights.items()) if weight > 0]
    return ", ".join(shown) if shown else "the model alone"


def decoder_label(weights: dict[str, float]) -> str:
    """What produced the ranking: the model fused with weighted scorers, or the model alone."""
    shown = [f"{name} {weight:g}" for name, weight in sorted(weights.items()) if weight > 0]
    return f"fused ({', '.join(shown)})" if shown else "model alone"


def evaluation_table(result: dict, keys: list[str] = METRIC_KEYS) -> str:
    """One row per metric; columns: genrec's decoding, each fused part alone (model, SASRec), the
    transition prior alone, popularity."""
    columns = [(decoder_label(result["fusion"]), result)]
    columns += [(f"{name} alone", metrics) for name, metrics in result.get("alone", {}).items()]
    columns += [("prior alone", result["transition_prior"]), ("popularity", result["popularity"])]
    widths = [max(len(label), 8) for label, _ in columns]
    lines = [f"{'metric':<10} " + " ".join(f"{label:>{w}}" for (label, _), w in zip(columns, widths))]
    for key in keys:
        lines.append(f"{key:<10} " + " ".join(f"{metrics[key]:>{w}.4f}" for (_, metrics), w in zip(columns, widths)))
    lines.append(f"invalid items {result['invalid_rate']:.4f} of the recommended items (the trie admits only "
                 f"catalogue items); empty beam slots {result.get('empty_rate', 0.0):.4f}")
    lines.append("prior alone = item-transition counts from the training sequences; fused = model + sum of w x log "
                 "scorer; the model alone: --fusion-weight 0")
    lines.append("every column leaves each user's own history items out (--include-seen keeps them)"
                 if result.get("exclude_seen") else
                 "items of the user's own history may be recommended (--exclude-seen leaves them out)")
    return "\n".join(lines)


def fusion_line(fusion: dict | None) -> str | None:
    """The fusion weights chosen after training and each tried setting's validation NDCG@10."""
    if not fusion:
        return None
    tried = "; ".join(f"{describe_weights(row['weights'])}{', history left out' if row.get('exclude_seen') else ''}: "
                      f"{row['ndcg@10']:.4f}" for row in fusion["grid"])
    seen = ", the user's history left out" if fusion.get("exclude_seen") else ""
    return (f"fused decoding: {describe_weights(fusion['weights'])}{seen} chosen on {fusion['users']:,} validation "
            f"users (NDCG@10 by setting: {tried}); evaluate / recommend use it, --fusion-weight 0 for the model alone")


def recommendation_lines(result) -> list[str]:
    """A ``pipeline.Recommendations`` as text: who, their history, then one line per item."""
    who = f"user {result.user} ({result.user_raw_id})" if result.user else "the given history"
    decoding = (f"fused: {describe_weights(result.fusion)}, count-based scorers fitted on every interaction"
                if result.fusion else "the model alone")
    lines = [f"top {len(result.items)} for {who}, history of {plural(len(result.history), 'item')}; "
             f"last: {result.history[-1]['title'][:70]} ({decoding})"]
    for row in result.items:
        sid = f"sid {'-'.join(map(str, row['sid'])):<15} " if row["sid"] is not None else ""
        lines.append(f"{row['rank']:>3}. [{row['item_id']:>6} {row['raw_id']}] {row['title'][:60]:<60} "
                     f"{sid}score {row['score']:.3f}")
        if row.get("because"):
            lines.append("       because of " + "; ".join(f"{r['title'][:40]} [{r['raw_id']}] ({r['count']}x)"
                                                      for r in row["because"]))
        if row.get("influence"):
            lines.append("       without " + "; ".join(f"{r['title'][:40]} [{r['raw_id']}] its score falls by "
                                                    f"{r['drop']:.3f}" for r in row["influence"]))
    return lines


STOP_REASONS = {"steps": "all steps done", "patience": "no validation gain for --patience evaluations",
                "time budget": "time budget reached"}


def print_training_result(result, seconds: float) -> None:
    """What train-recommender and train-sasrec say at the end: the run (or that it had finished
    before), then the fusion chosen on validation. ``result``: a genrec.pipeline.TrainedRecommender."""
    from genrec.core.sharding import is_main_process

    state = result.state
    if result.already_done:
        print(f"{result.path}: training already finished (best valid NDCG@10 {state.best_ndcg:.4f} at step "
              f"{state.best_step:,} of {state.step:,}); pass --restart to train again")
    elif not is_main_process():
        return  # accelerate launch: only the main process reports
    else:
        why = STOP_REASONS.get(state.stop_reason, state.stop_reason)
        print(f"trained {state.step:,} steps in {seconds:.0f} s ({why}); best valid NDCG@10 {state.best_ndcg:.4f} "
              f"± {state.best_ndcg_se:.4f} (s.e. over the sampled users) at step {state.best_step:,}, the model "
              f"kept -> {result.path}")
    line = fusion_line(result.fusion)
    if line:
        print(line)

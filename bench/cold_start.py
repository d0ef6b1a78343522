"""Cold-start items: hold items out of training, add them back with `genrec add-items`, and measure
how the recommender treats them, per tokenizer method.

    python -m bench.cold_start --dataset data/amazon-beauty --config bench/configs/cold-start-cpu.json \
        --work /tmp/cold --methods r3vae,rqvae,rkmeans,vqvae,opq [--out bench/results --name cold-start-beauty]

1. A random ``--cold-fraction`` of the items (seeded) becomes the cold set. A *warm* dataset is
   written with those items removed from every sequence (users left with fewer than 3 items are
   dropped) and the remaining items renumbered in their original order; its embeddings are the
   original rows of the warm items, so neither the tokenizer nor the recommender sees a cold item.
2. Per method: train the tokenizer and the recommender on the warm dataset (the config's
   recipe; with a "sasrec" section also a SASRec, once, beside the first T5 model, then the fusion
   weights on validation as `genrec train-recommender` chooses them), then `add-items` the cold
   items (their original texts, embedded with the tokenizer's encoder, SIDs from the trained
   tokenizer), which also chooses the new-item text scorer on validation (recommender.new_items).
3. Test on the ORIGINAL leave-one-out cases of every warm-dataset user (history = their whole
   original sequence but the last item, cold items included under their new ids), decoding with
   no new-item handling, with each text scorer mixed in and with each scorer's exposure quota
   (settings chosen on the original validation cases, the second-to-last items), and as `genrec`
   does by default: Recall@10 and NDCG@10 split by whether
   the target is cold or warm, the share of all top-10 slots that go to cold items (against their
   share of the catalogue), and how many cold items appear in anyone's top 10.

Every stage is cached in WORK (a rerun skips finished runs; training resumes). The report goes to
WORK unless ``--out`` is given.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.common import markdown_table, run_script, script_parser, write_report
from genrec.core.io import atomic_write_json

MIN_WARM_ITEMS = 3  # valid + test + one training item


def write_warm_dataset(source: Path, out: Path, cold: set[int]) -> dict:
    """The dataset without the cold items; returns the id maps (original -> warm, warm users)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from genrec.core.io import atomic_directory, atomic_write_json, read_json
    from genrec.data_prep.dataset import load_processed_dataset
    from genrec.data_prep.embeddings import EMBEDDINGS_FILE, META_FILE, texts_checksum

    data = load_processed_dataset(source)
    warm_items = [i for i in range(1, data.num_items + 1) if i not in cold]
    new_id = {item: index + 1 for index, item in enumerate(warm_items)}
    users = [u for u in range(1, data.num_users + 1)
             if sum(1 for i in data.history(u) if i not in cold) >= MIN_WARM_ITEMS]
    sequences = [[new_id[i] for i in data.history(u) if i not in cold] for u in users]
    texts = [data.item_text(i) for i in warm_items]
    with atomic_directory(out) as tmp:
        pq.write_table(pa.table({"item_id": list(range(1, len(warm_items) + 1)),
                                 "raw_id": [data.item_raw_id(i) for i in warm_items],
                                 "title": [data.item_title(i) for i in warm_items],
                                 "text": texts}), tmp / "items.parquet")
        pq.write_table(pa.table({"user_id": list(range(1, len(users) + 1)),
                                 "raw_id": [data.user_raw_id(u) for u in users]}), tmp / "users.parquet")
        pq.write_table(pa.table({"user_id": list(range(1, len(users) + 1)), "items": sequences}),
                       tmp / "sequences.parquet")
        atomic_write_json(tmp / "stats.json", {"name": data.stats.get("name", "custom"), "num_users": len(users),
                                               "num_items": len(warm_items),
                                               "num_interactions": sum(map(len, sequences)),
                                               "cold_start_source": str(Path(source).resolve())})
        for folder in sorted((Path(source) / "embeddings").iterdir()):  # every cached encoder, warm rows only
            meta = read_json(folder / META_FILE)
            vectors = np.load(folder / EMBEDDINGS_FILE)[np.asarray(warm_items) - 1]
            target = tmp / "embeddings" / folder.name
            target.mkdir(parents=True)
            np.save(target / EMBEDDINGS_FILE, vectors)
            atomic_write_json(target / META_FILE, {**meta, "num_items": len(warm_items),
                                                   "texts_sha256": texts_checksum(texts)})
    return {"users": users, "warm_items": warm_items}


def cold_items_file(source: Path, cold: list[int], path: Path) -> None:
    from genrec.data_prep.dataset import load_processed_dataset

    data = load_processed_dataset(source)
    path.write_text("".join(json.dumps({"id": data.item_raw_id(i), "title": data.item_title(i),
                                        "text": data.item_text(i)}) + "\n" for i in cold))


SHARES = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3)  # the new items' part of the mixture, chosen on validation
MODEL_TEMPERATURES = (1.0, 2.0, 3.0, 5.0)  # what the recommender's fused scores are divided by, chosen with it
EXPOSURES = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0)  # users given a new-item slot, chosen on validation
TOP_K = 10  # the list a slot policy fills (its last place goes to a new item)
WARM_LOSS = 0.03  # the most validation warm Recall@10 a slot setting may cost (the bound)
COLD_RECALL, COLD_SHARE = 0.03, 0.03  # what new items should get: cold Recall@10 and share of top-10 slots


def original_cases(original, grown, users: list[int], cold_raw: set[str], split: str):
    """(histories, targets, cold target?) of the original leave-one-out ``split`` ("valid": the
    second-to-last item, "test": the last) of ``users``, in the grown catalogue's ids."""
    end = {"valid": 2, "test": 1}[split]
    histories, targets, cold = [], [], []
    for user in users:
        sequence = original.history(user)
        mapped = [grown.item_id_for(original.item_raw_id(i)) for i in sequence]
        histories.append(mapped[:-end])
        targets.append(mapped[-end])
        cold.append(original.item_raw_id(sequence[-end]) in cold_raw)
    return histories, np.asarray(targets), np.asarray(cold)


def metrics_of(items: np.ndarray, targets: np.ndarray, cold_target: np.ndarray, cold_ids: np.ndarray,
               k: int = 10) -> dict:
    from genrec.eval.ranking_metrics import ranking_metrics

    top = items[:, :k]
    result = {"cold_share_of_top10_slots": float(np.isin(top, cold_ids).mean()),
              "cold_items_in_some_top10": int(np.isin(cold_ids, top).sum())}
    for part, mask in (("cold", cold_target), ("warm", ~cold_target), ("all", np.ones_like(cold_target))):
        metrics = ranking_metrics(items[mask], targets[mask], (k,)) if mask.any() else {}
        result[part] = {key: metrics.get(key) for key in (f"recall@{k}", f"ndcg@{k}")}
    return result


def decode_cached(recommender, histories: list[list[int]], beams: int, path: Path | None):
    """The recommender's top ``beams`` (no new-item handling) for ``histories``, read from ``path``
    when an earlier run wrote it there under the same decoding policy (decoding 22k users twice is
    most of a scoring run)."""
    from genrec.core.io import atomic_write_bytes

    policy = json.dumps({"weights": recommender.policy.weights, "exclude_seen": recommender.policy.exclude_seen},
                        sort_keys=True)
    if path is not None and path.is_file():
        with np.load(path) as cached:
            same = "policy" in cached and str(cached["policy"]) == policy
            if same and cached["items"].shape == (len(histories), beams):
                return cached["items"], cached["scores"]
    items, scores = recommender.recommend(histories, top_k=beams, beams=beams)
    if path is not None:
        import io

        buffer = io.BytesIO()
        np.savez(buffer, items=items, scores=scores, policy=np.asarray(policy))
        atomic_write_bytes(path, buffer.getvalue())
    return items, scores


class RememberedScores:
    """A text scorer that computes its scores for one list of histories once (the grids below score
    the same cases dozens of times; SASRec's are a forward pass over every history)."""

    def __init__(self, scorer):
        self.scorer, self.vectors = scorer, scorer.vectors
        self._memo: dict = {}

    def scores(self, histories: list[list[int]], items: np.ndarray) -> np.ndarray:
        key = (id(histories), len(histories), int(items[0]) if len(items) else 0, len(items))
        if key not in self._memo:
            self._memo[key] = (histories, self.scorer.scores(histories, items))  # holds the list: its id stays its own
        return self._memo[key][1]


def score(source: Path, run_model: Path, run_data: Path, users: list[int], cold_raw: set[str],
          beams: int = 30, cache: Path | None = None) -> dict:
    """Per new-item variant, test metrics on the original leave-one-out cases: the model's fused
    decoding as it is ("none"); mixed with each text scorer at the share and model temperature
    that do best on the original validation cases (all targets, NDCG@10); each text scorer's slots
    (``slot_variant``); "chosen" = what `genrec` does after add-items: the scorer chosen on
    validation when add-items grew the model, slots at the default exposure. The beam is decoded
    once per split; each variant re-ranks its candidates (what ``Recommender.recommend`` does with
    a policy's ``new_items``)."""
    from genrec import pipeline
    from genrec.data_prep.dataset import load_processed_dataset
    from genrec.recommender.new_items import NewItemMixture

    original = load_processed_dataset(source)
    recommender, grown = pipeline.load_trained(run_data, run_model, new_item_share=0)
    settings = recommender.meta["new_items"]
    first_new = pipeline.trained_items(recommender) + 1
    cold_ids = np.asarray(sorted(grown.item_id_for(raw) for raw in cold_raw))
    decoded = {}
    for split in ("valid", "test"):
        histories, targets, cold = original_cases(original, grown, users, cold_raw, split)
        items, scores = decode_cached(recommender, histories, beams, None if cache is None else cache / f"{split}.npz")
        decoded[split] = (histories, targets, cold, items, scores)
    out = {"users": len(users), "cold_targets": int(decoded["test"][2].sum()), "cold_items": len(cold_ids),
           "cold_share_of_catalogue": len(cold_ids) / grown.num_items, "new_items": settings,
           "exclude_seen": recommender.policy.exclude_seen,
           "variants": {"none": metrics_of(decoded["test"][3], decoded["test"][1], decoded["test"][2], cold_ids)}}
    exclude_seen = recommender.policy.exclude_seen  # the history rule chosen on validation, for every variant
    pooled = 1.0 + sum(recommender.policy.weights.values())  # the default: a geometric mean of the fused parts
    settings_grid = [(share, t) for share in SHARES for t in sorted({*MODEL_TEMPERATURES, pooled})]
    scorers = {kind: RememberedScores(scorer) for kind, scorer in
               pipeline.new_item_scorers(run_model, recommender, grown).items()}
    population = pipeline.validation_histories(grown)
    for kind, scorer in scorers.items():
        def evaluate(split, share, model_temperature):
            histories, targets, cold, items, scores = decoded[split]
            mixture = NewItemMixture(scorer, settings["tried"][kind]["temperature"], first_new, share,
                                     model_temperature=model_temperature)
            return metrics_of(mixture.merge(histories, items, scores, beams, exclude_seen)[0], targets, cold, cold_ids)

        on_valid = {setting: evaluate("valid", *setting) for setting in settings_grid}
        share, model_temperature = max(settings_grid, key=lambda s: on_valid[s]["all"]["ndcg@10"])
        out["variants"][kind] = {"share": share, "model_temperature": model_temperature,
                                 **evaluate("test", share, model_temperature),
                                 "validation": [{"share": s, "model_temperature": t, **m["all"],
                                                 "cold": m["cold"]} for (s, t), m in on_valid.items()]}
        slots = SlotCases(decoded, scorer, settings["tried"][kind]["temperature"], first_new, population, cold_ids,
                          exclude_seen)
        out["variants"][f"{kind} slots"] = slot_variant(slots)
        if kind == settings["scorer"]:  # what `genrec` does after add-items: this scorer, slots at the default
            chosen = {"exposure": pipeline.NEW_ITEM_EXPOSURE, **slots.metrics("test", pipeline.NEW_ITEM_EXPOSURE)}
    out["variants"]["chosen"] = chosen
    return out


@dataclass
class SlotCases:
    """``NewItemSlots`` of one text scorer over the decoded cases, its threshold set on
    ``population`` (the grown catalogue's validation histories, as `genrec` sets it)."""

    decoded: dict
    scorer: object
    temperature: float
    first_new: int
    population: list
    cold_ids: np.ndarray
    exclude_seen: bool = False

    def metrics(self, split: str, exposure: float) -> dict:
        from genrec.recommender.new_items import NewItemSlots, slot_threshold

        histories, targets, cold, items, scores = self.decoded[split]
        threshold = slot_threshold(self.scorer, self.temperature, self.population, self.first_new, exposure)
        policy = NewItemSlots(self.scorer, self.temperature, self.first_new, threshold)
        return metrics_of(policy.merge(histories, items, scores, TOP_K, self.exclude_seen)[0], targets, cold,
                          self.cold_ids)


def slot_variant(slots: SlotCases) -> dict:
    """The slots at each of EXPOSURES; the exposure with the most cold Recall@10 on the original
    validation cases whose warm Recall@10 there is within WARM_LOSS of no handling's, then test."""
    decoded, cold_ids, evaluate = slots.decoded, slots.cold_ids, slots.metrics
    histories, targets, cold, items, _ = decoded["valid"]
    warm_none = metrics_of(items, targets, cold, cold_ids)["warm"]["recall@10"]
    on_valid = {e: evaluate("valid", e) for e in EXPOSURES}
    allowed = [e for e in EXPOSURES if on_valid[e]["warm"]["recall@10"] >= (1 - WARM_LOSS) * warm_none]
    allowed = allowed or [min(EXPOSURES)]
    exposure = max(allowed, key=lambda e: on_valid[e]["cold"]["recall@10"] or 0.0)
    return {"exposure": exposure, **evaluate("test", exposure),
            "validation": [{"exposure": e, **m["all"], "cold": m["cold"], "warm": m["warm"],
                            "warm_change": (m["warm"]["recall@10"] - warm_none) / warm_none if warm_none else None,
                            "cold_share_of_top10_slots": m["cold_share_of_top10_slots"]}
                           for e, m in on_valid.items()]}


def train_models(config: dict, work: Path, data: Path, method: str) -> dict:
    """The tokenizer and T5 model of ``method`` on the run's warm catalogue and, with a "sasrec"
    section, a SASRec on it trained beside the first T5 (one core each; copied into every run's
    folder as DATASET/sasrec); then the fusion weights on validation users."""
    from genrec import pipeline
    from genrec.pipeline.beside import training_beside

    options = {**config.get("tokenizer", {}), "method": method, **config.get("method_options", {}).get(method, {})}
    if not (data / "tokenizer" / "model.safetensors").is_file():
        pipeline.train_tokenizer(pipeline.tokenizer_config_from(options, dataset=str(data), progress=False))
    sasrec = config.get("sasrec")
    trained_sasrec = work / "sasrec"
    recommender = pipeline.RecommenderTrainingConfig.from_options(data, train=dict(config.get("train", {})),
                                                     model=dict(config.get("model", {})), progress=False,
                                                     fusion_grids={"prior": (0.0,)},  # chosen below
                                                     sasrec_beside=None)  # this run's own SASRec: below
    if sasrec is not None and not (trained_sasrec / "genrec.json").is_file():
        settings = work / "sasrec-options.json"
        settings.write_text(json.dumps({"train": sasrec.get("train", {}), "model": sasrec.get("model", {})}))
        command = [sys.executable, "-m", "genrec.cli", "train-sasrec", "--dataset", str(work / "warm"),
                   "--out", str(trained_sasrec), "--config", str(settings), "--fusion-weights", "prior=0",
                   "--no-progress"]
        with training_beside(command, work / "train_sasrec.log"):
            pipeline.train_recommender(recommender)
    trained = pipeline.train_recommender(recommender)
    if sasrec is not None and not (data / "sasrec" / "genrec.json").is_file():
        shutil.copytree(trained_sasrec, data / ".sasrec.tmp", dirs_exist_ok=True)
        (data / ".sasrec.tmp").rename(data / "sasrec")
    if "fusion" not in json.loads((data / "recommender" / "genrec.json").read_text()):
        pipeline.choose_fusion(data / "recommender", data, pipeline.FUSION_GRIDS, 5000,
                               recommender.train.seed)
    return {"tokenizer_options": options, "best_step": trained.state.best_step}


def run_method(args, config: dict, work: Path, method: str, cold_raw: set[str], users: list[int]) -> dict:
    from genrec import pipeline

    run = work / "runs" / method
    result_file = run / "result.json"
    data = run / "data"
    if result_file.is_file():
        earlier = json.loads(result_file.read_text())
        choose = args.redo_decoding and not earlier.get("decoding_redone")
        return score_again(args, config, earlier, data, cold_raw, users, run, choose) if choose or args.rescore \
            else earlier
    if not (data / "stats.json").is_file():
        shutil.copytree(work / "warm", data)  # each method grows its own copy of the catalogue
    started = time.perf_counter()
    trained = train_models(config, work, data, method)
    added = pipeline.add_items(pipeline.AddItemsConfig(work / "cold_items.jsonl", dataset=data, progress=False))
    fusion = json.loads((data / "recommender" / "genrec.json").read_text()).get("fusion") or {}
    result = {"method": method, **trained, "fusion": fusion.get("weights"),
              "added": len(added.item_ids) or None, "moved_to_free_code": added.moved,
              **score(Path(args.dataset), data / "recommender", data, users, cold_raw, cache=run / "decoded"),
              "seconds": round(time.perf_counter() - started, 1)}
    run.mkdir(parents=True, exist_ok=True)
    atomic_write_json(result_file, result)
    return result


def score_again(args, config: dict, earlier: dict, data: Path, cold_raw: set[str], users: list[int],
                run: Path, choose: bool) -> dict:
    """A finished run scored again on the same trained models and grown catalogue: with ``choose``
    (``--redo-decoding``, for runs made before a decoding change) its decoding policy is first
    chosen anew on validation (fusion weights and the history rule, as `genrec train-recommender`
    chooses them today); without (``--rescore``, e.g. after a change of genrec's new-item default)
    the beams cached under the recorded policy are read again."""
    from genrec import pipeline

    started = time.perf_counter()
    if choose:
        pipeline.choose_fusion(data / "recommender", data, pipeline.FUSION_GRIDS, 5000,
                               config.get("train", {}).get("seed", 0))
    fusion = json.loads((data / "recommender" / "genrec.json").read_text())["fusion"]
    result = {**earlier, "fusion": fusion.get("weights"), "decoding_redone": choose or earlier.get("decoding_redone"),
              **score(Path(args.dataset), data / "recommender", data, users, cold_raw, cache=run / "decoded"),
              "redo_seconds": round(time.perf_counter() - started, 1)}
    atomic_write_json(run / "result.json", result)
    return result


def render(report: dict) -> str:
    def f(value):
        return "n/a" if value is None else f"{value:.4f}"

    rows = []
    for r in report["runs"]:
        none = r["variants"]["none"]["warm"]["recall@10"]
        for name, v in r["variants"].items():
            change = (v["warm"]["recall@10"] - none) / none if none else None
            label = name + (f" ({r['new_items']['scorer']})" if name == "chosen" else "")
            setting = (f"share {v['share']:g} / T {v['model_temperature']:g}" if "share" in v else
                       f"exposure {v['exposure']:g}" if "exposure" in v else "-")
            rows.append([r["method"], label, setting,
                         f(v["cold"]["recall@10"]), f(v["cold"]["ndcg@10"]), f(v["warm"]["recall@10"]),
                         f(v["warm"]["ndcg@10"]), "n/a" if change is None else f"{change:+.1%}",
                         f(v["all"]["recall@10"]), f(v["all"]["ndcg@10"]), f"{v['cold_share_of_top10_slots']:.4f}",
                         f"{v['cold_items_in_some_top10']}/{r['cold_items']}"])
    first = report["runs"][0] if report["runs"] else {}
    chosen = [f"{r['method']}: {r['new_items']['scorer']} (temperature {r['new_items']['temperature']}, "
              f"validation NDCG@10 among {r['new_items']['sample']} stand-ins: " +
              ", ".join(f"{k} {v['ndcg@10']:.4f}" for k, v in r["new_items"]["tried"].items()) + ")"
              for r in report["runs"]]
    return "\n".join([
        f"# Cold-start items on {report['dataset_name']}", "",
        f"Command: `{report['command']}`", "", f"Hardware: {report['hardware']}", "",
        f"{report['cold_items']} of {report['num_items']} items held out ({report['cold_fraction']:.0%}, seed "
        f"{report['seed']}); {first.get('users', 0):,} test users, {first.get('cold_targets', 0):,} of them with a cold "
        f"target; cold items are {first.get('cold_share_of_catalogue', 0):.1%} of the grown catalogue. Config: "
        + json.dumps(report["config"]), "",
        "Variants: `none` = the trained model's fused decoding as it is; `content` / `sasrec` = mixed with that "
        "text scorer over the added items (recommender.new_items: temperature chosen on validation users of the "
        "warm catalogue; the share (" + ", ".join(map(str, SHARES)) + ") and the temperature the model's fused "
        "scores are divided by (" + ", ".join(map(str, MODEL_TEMPERATURES)) + " or 1 + its fusion weights, the "
        "default of `genrec` before the slots) chosen together by all-target NDCG@10 on the original validation "
        "cases); `content slots` / `sasrec slots` = the exposure quota (recommender.new_items.NewItemSlots: the "
        "10th place goes to the best new item by text for the given fraction of users, those the text scorer is "
        "most confident about; the exposure (" + ", ".join(map(str, EXPOSURES)) + ") with the most cold Recall@10 "
        f"on the original validation cases whose warm Recall@10 there stays within {WARM_LOSS:.0%} of `none`); "
        "`chosen` = what `genrec` does after add-items: the scorer add-items chose on validation, slots at the "
        "default exposure. Test is read once per row. Warm change: warm Recall@10 against `none`.", "",
        *markdown_table(["tokenizer", "new items", "setting", "cold R@10", "cold NDCG@10", "warm R@10", "warm NDCG@10",
                         "warm change", "all R@10", "all NDCG@10", "cold share of top-10",
                         "cold items ever in a top-10"], rows), "",
        "Chosen on validation: " + "; ".join(chosen), "",
        "Decoding of every row (the fusion weights and the history rule each model chose on validation users"
        " of the warm catalogue): " + "; ".join(decoding_line(r) for r in report["runs"]), "",
        *default_exposure_lines(report["runs"]),
        *validation_tradeoff(report), ""])


def decoding_line(run: dict) -> str:
    """One run's decoding policy in words, for the report."""
    weights = ", ".join(f"{k} {v:g}" for k, v in (run.get("fusion") or {}).items()) or "model alone"
    rule = {True: "the user's history left out", False: "history items allowed"}.get(run.get("exclude_seen"),
                                                                                     "history rule not recorded")
    return f"{run['method']}: {weights}; {rule}" + (" (re-chosen with --redo-decoding)" if run.get("decoding_redone")
                                                    else "")


def default_exposure_lines(runs: list[dict]) -> list[str]:
    """The report's section on the exposure `genrec` should default to, from validation only."""
    from genrec.pipeline import NEW_ITEM_EXPOSURE

    best, rows = exposure_with_most_room(runs)
    if best is None:
        return []
    return [f"Default exposure on validation: {best:g} (`genrec` uses {NEW_ITEM_EXPOSURE:g}). Per exposure, "
            f"the room left to the goals (cold Recall@10 >= {COLD_RECALL:g}, cold share of top-10 >= "
            f"{COLD_SHARE:.0%}, warm Recall@10 within {WARM_LOSS:.0%}: the smallest relative margin, negative = a "
            "goal missed) on the original validation cases with the slots of the chosen text scorer; the default "
            "is the exposure whose worst tokenizer has the most room:", "",
            *markdown_table(["exposure", "smallest room", "room per tokenizer (" +
                             " / ".join(r["method"] for r in runs) + ")"], rows), ""]


def room(point: dict) -> float:
    """How far inside the goals (cold Recall@10 >= COLD_RECALL, cold share of top-10 slots >=
    COLD_SHARE, warm Recall@10 no more than WARM_LOSS below no handling) a validation point of a
    slot setting lies: its smallest relative margin (negative: a goal missed)."""
    return min((point["cold"].get("recall@10") or 0.0) / COLD_RECALL - 1,
               point["cold_share_of_top10_slots"] / COLD_SHARE - 1, 1 + point["warm_change"] / WARM_LOSS)


def exposure_with_most_room(runs: list[dict]) -> tuple[float | None, list[list]]:
    """The exposure whose validation points (slots of the text scorer add-items chose, one per run)
    have the largest smallest ``room`` over the runs: the default for `genrec`, chosen on the
    original validation cases of every tokenizer. Also the table rows (exposure, room per run)."""
    points = {}
    for run in runs:
        for point in run["variants"].get(f"{run['new_items']['scorer']} slots", {}).get("validation", []):
            points.setdefault(point["exposure"], []).append(room(point))
    complete = {e: rooms for e, rooms in points.items() if len(rooms) == len(runs)}
    best = max(complete, key=lambda e: min(complete[e])) if complete else None
    return best, [[f"{e:g}", f"{min(rooms):+.2f}", " / ".join(f"{r:+.2f}" for r in rooms)]
                  for e, rooms in sorted(complete.items())]


def validation_tradeoff(report: dict) -> list[str]:
    """Per run and text scorer, every (share, model temperature) tried on the original validation
    cases: what new items gain (cold Recall@10) against what all targets get."""
    lines = []
    for r in report["runs"]:
        for kind, v in r["variants"].items():
            if kind == "chosen" or "validation" not in v:
                continue
            if "exposure" in v:
                rows = [[f"{x['exposure']:g}", f"{x['recall@10']:.4f}", f"{(x['cold'].get('recall@10') or 0):.4f}",
                         f"{x['warm']['recall@10']:.4f}", f"{x['warm_change']:+.1%}",
                         f"{x['cold_share_of_top10_slots']:.3f}"] for x in v["validation"]]
                header = ["exposure", "all R@10", "cold R@10", "warm R@10", "warm change", "cold share of top-10"]
            else:
                rows = [[f"{x['share']:g}", f"{x['model_temperature']:g}", f"{x['recall@10']:.4f}",
                         f"{x['ndcg@10']:.4f}", f"{(x['cold'].get('recall@10') or 0):.4f}"] for x in v["validation"]]
                header = ["share", "model temperature", "all R@10", "all NDCG@10", "cold R@10"]
            lines += [f"Validation trade-off, {r['method']} with {kind}:", "", *markdown_table(header, rows), ""]
    return lines


def main_run(args, command: str) -> int:
    from genrec.core.config import load_config_file
    from genrec.core.hardware import hardware_line
    from genrec.data_prep.dataset import load_processed_dataset
    from genrec.tokenizer.registry import METHODS

    from genrec.core.errors import GenrecError

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    if set(methods) - set(METHODS):
        raise GenrecError(f"unknown method(s) {sorted(set(methods) - set(METHODS))}; choose from {', '.join(METHODS)}")
    if not 0 < args.cold_fraction < 1:
        raise GenrecError("--cold-fraction must be between 0 and 1")
    config = load_config_file(args.config)
    source, work = Path(args.dataset), Path(args.work)
    data = load_processed_dataset(source)
    rng = np.random.default_rng(args.seed)
    cold = sorted(int(i) for i in rng.choice(np.arange(1, data.num_items + 1),
                                             int(round(args.cold_fraction * data.num_items)), replace=False))
    work.mkdir(parents=True, exist_ok=True)
    if not (work / "warm" / "stats.json").is_file():
        write_warm_dataset(source, work / "warm", set(cold))
        cold_items_file(source, cold, work / "cold_items.jsonl")
    warm_users = set(load_processed_dataset(work / "warm").user_raw_ids)
    users = [u for u in range(1, data.num_users + 1) if data.user_raw_id(u) in warm_users]
    cold_raw = {data.item_raw_id(i) for i in cold}
    runs = []
    for method in methods:
        print(f"[cold-start] {method}", flush=True)
        runs.append(run_method(args, config, work, method, cold_raw, users))
    report = {"command": command, "hardware": hardware_line(), "dataset": str(source.resolve()),
              "dataset_name": data.stats.get("name", source.name), "num_items": data.num_items,
              "cold_items": len(cold), "cold_fraction": args.cold_fraction, "seed": args.seed, "config": config,
              "runs": runs}
    write_report(Path(args.out) if args.out else work, args.name, report, render(report))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = script_parser("bench.cold_start", __doc__)
    parser.add_argument("--dataset", required=True, help="prepared dataset with item embeddings computed")
    parser.add_argument("--config", help="JSON with tokenizer / method_options / train / model options, and an "
                                         "optional sasrec section ({\"train\": ..., \"model\": ...})")
    parser.add_argument("--work", required=True, help="scratch folder (runs are cached here)")
    parser.add_argument("--methods", default="r3vae,rqvae,rkmeans,vqvae,opq")
    parser.add_argument("--cold-fraction", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--redo-decoding", action="store_true",
                        help="for finished runs: choose the decoding policy on validation again and score again "
                             "(same trained models and catalogue), once per run")
    parser.add_argument("--rescore", action="store_true",
                        help="for finished runs: score again under the recorded policy (cached beams), e.g. after "
                             "a change of genrec's new-item defaults")
    parser.add_argument("--out", help="report folder (default: --work)")
    parser.add_argument("--name", default="cold-start")
    return run_script("bench.cold_start", parser, main_run, argv)


if __name__ == "__main__":
    raise SystemExit(main())

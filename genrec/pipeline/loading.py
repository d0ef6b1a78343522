"""``load_trained``: a trained model with its dataset, decoding under its chosen (or a given) policy."""

from __future__ import annotations

from pathlib import Path

from genrec.core.errors import GenrecError
from genrec.core.layout import RECOMMENDER_DIR, recorded_path, resolve_dataset_dir
from genrec.pipeline.common import FUSION_GRIDS, PRIOR_FIT, as_path, as_str
from genrec.pipeline.new_items import new_item_policy


def own_kind(recommender) -> set[str]:
    """Scorer names a recommender is itself (a SASRec model is not fused with another SASRec)."""
    return {"sasrec"} if recommender.kind == "sasrec" else set()


def fused_scorers(dataset, names: set[str], sasrec_path: Path | None, fit: str, successors: int = 0) -> dict:
    """The named per-item scorers for fused decoding. ``fit``: "train" fits count-based scorers on
    the training parts (all but each user's last two items: evaluation), "all" on every
    interaction (serving). ``successors``: followers the transition prior keeps per item (0 = all)."""
    from genrec.recommender.fusion import TransitionPrior
    from genrec.recommender.sasrec_recommender import SASRecRecommender

    scorers = {}
    if "prior" in names:
        sequences = dataset.train_sequences() if fit == "train" else dataset.sequences
        scorers["prior"] = TransitionPrior.fit(sequences, dataset.num_items, successors=successors)
    if "sasrec" in names and sasrec_path is not None:
        sasrec = SASRecRecommender.load(sasrec_path)
        if sasrec.num_items < dataset.num_items:
            raise GenrecError(f"the SASRec {sasrec_path} knows {sasrec.num_items} items, the model fusing it "
                              f"{dataset.num_items}: rerun `genrec add-items` to grow it too")
        scorers["sasrec"] = sasrec.with_items(dataset.num_items)  # grown since: read as the model's version
    return scorers


def load_trained(dataset: str | Path | None, model: str | Path | None, tokenizer: str | Path | None = None,
                 fusion: dict[str, float] | None = None, fit: str = "train", new_item_share: float | None = None,
                 prior_successors: int | None = None, new_item_exposure: float | None = None,
                 exclude_seen: bool | None = None):
    """(recommender, ProcessedDataset): ``model`` or DATASET/recommender (a T5 ``Recommender`` or a
    ``SASRecRecommender``), and the dataset it was trained on unless ``dataset`` names another one
    with the same items. It decodes under the policy of ``fusion`` (scorer name -> weight; {} = the
    model alone), by default the weights chosen after training (genrec.json "fusion"). ``fit``: the
    count-based scorers read the training parts ("train": evaluation) or every interaction
    ("all": recommend and serve). Items added after training get the 10th place for
    ``new_item_exposure`` of users (None: ``NEW_ITEM_EXPOSURE``; 0: not at all), or with
    ``new_item_share`` that part of a mixture (0: not at all; ``new_item_policy``).
    ``prior_successors``: followers the transition prior keeps per item (0 = all; default:
    genrec.json "fusion" "prior_successors", else all). ``exclude_seen``: the policy leaves the
    user's own history items out (None: as chosen after training, genrec.json "fusion"
    "exclude_seen", else not)."""
    from genrec.data_prep.dataset import known_catalogue, load_processed_dataset
    from genrec.recommender.fusion import DecodingPolicy
    from genrec.recommender.recommender import Recommender
    from genrec.recommender.sasrec_recommender import SASRecRecommender, is_sasrec_dir

    if fit not in PRIOR_FIT:
        raise GenrecError(f"fit must be one of {', '.join(PRIOR_FIT)}, got {fit!r}")
    model_dir = as_path(model) or resolve_dataset_dir(as_str(dataset)) / RECOMMENDER_DIR
    if is_sasrec_dir(model_dir):
        recommender = SASRecRecommender.load(model_dir)
    else:
        recommender = Recommender.load(model_dir, tokenizer=tokenizer)
    recorded = recorded_path(recommender.meta.get("dataset"), model_dir)
    data = load_processed_dataset(resolve_dataset_dir(as_str(dataset) or as_str(recorded)))
    # The catalogue version the model knows: a dataset grown since by add-items is read as it was then.
    data = known_catalogue(data, recommender.meta.get("catalogue"), recommender.num_items, model_dir)
    chosen = recommender.meta.get("fusion") or {}
    weights = dict(chosen.get("weights", {"prior": chosen["weight"]} if "weight" in chosen else {}))
    if fusion is not None:
        unknown = sorted(set(fusion) - set(FUSION_GRIDS))
        if unknown:
            raise GenrecError(f"unknown scorer {', '.join(unknown)} in fusion weights; choose from "
                              f"{', '.join(FUSION_GRIDS)}")
        weights = dict(fusion)
    for name, weight in weights.items():
        if not weight >= 0:
            raise GenrecError(f"fusion weight of {name} must be >= 0 (0 = not fused), got {weight}")
    needed = {name for name, weight in weights.items() if weight > 0}
    sasrec_path = None
    if "sasrec" in needed:
        if "sasrec" in own_kind(recommender):
            raise GenrecError("a SASRec model cannot fuse another SASRec; give it a prior weight only")
        recorded = chosen.get("sasrec")
        if recorded is None:
            raise GenrecError(f"{model_dir}: no SASRec was fused at training time; train one (`genrec train-sasrec`) "
                              "and rerun `genrec train-recommender` to choose its weight")
        sasrec_path = (Path(model_dir) / recorded).resolve()
        if not is_sasrec_dir(sasrec_path):
            raise GenrecError(f"{model_dir}: the SASRec it fuses ({sasrec_path}) is missing")
    if new_item_share is not None and not 0 <= new_item_share < 1:
        raise GenrecError(f"the new items' share must be in [0, 1), got {new_item_share}")
    if new_item_exposure is not None and not 0 <= new_item_exposure <= 1:
        raise GenrecError(f"the new items' exposure must be in [0, 1], got {new_item_exposure}")
    successors = chosen.get("prior_successors", 0) if prior_successors is None else prior_successors
    fused_weights = {n: weights[n] for n in needed}
    scorers = fused_scorers(data, needed, sasrec_path, fit, successors)
    exclude = bool(chosen.get("exclude_seen", False)) if exclude_seen is None else bool(exclude_seen)
    policy = DecodingPolicy.from_weights(fused_weights, scorers, new_item_policy(
        model_dir, recommender, data, new_item_share, new_item_exposure, fused_weights, scorers), exclude)
    return recommender.with_policy(policy), data

"""The typed pipeline: one function per stage, each taking a dataclass config.

The CLI, ``genrec demo``, ``genrec compare`` and the benchmarks all call these; nothing chains
stages by building command lines.

    from genrec import pipeline as gp

    data = gp.prepare(gp.PrepareConfig("demo", out="data/demo"))
    gp.embed(gp.EmbedConfig(data.path))
    tok = gp.train_tokenizer(gp.TokenizerTrainingConfig(data.path, method="rkmeans"))
    rec = gp.train_recommender(gp.RecommenderTrainingConfig.from_options(data.path, train={"max_steps": 200}))
    print(gp.evaluate(gp.EvaluateConfig(data.path, split="test"))["recall@10"])
    print(gp.recommend(gp.RecommendConfig(data.path, user="1", top_k=5)).items)

Each stage reads and writes the on-disk layout in ``genrec.core.layout``, so any stage can also be
run alone on what an earlier one left.

Modules, each one concern, each importing only those above it:

    common           paths, names and checks the stages share
    data             prepare, embed
    tokenizer        train_tokenizer
    new_items        how items added after training enter the rankings
    loading          load_trained: a model, its dataset and its decoding policy
    choices          chosen on validation after training: choose_fusion, fit_new_items
    beside           SASRec trained in a child process beside the T5
    training         train_recommender (T5), train_sasrec
    evaluation, recommendations, recommend_all, add_items   the user-facing stages
"""

from genrec.pipeline.add_items import AddedItems, AddItemsConfig, add_items
from genrec.pipeline.beside import SASRecBeside
from genrec.pipeline.choices import choose_fusion, fit_new_items

from genrec.pipeline.common import EXCLUDE_SEEN_CHOICES, FUSION_GRIDS, PRIOR_FIT, SASREC_DIR
from genrec.pipeline.data import EmbedConfig, PrepareConfig, PreparedDataset, embed, prepare
from genrec.pipeline.evaluation import EvaluateConfig, evaluate
from genrec.pipeline.loading import load_trained
from genrec.pipeline.new_items import (
    NEW_ITEM_EXPOSURE,
    NEW_ITEM_USERS,
    new_item_scorers,
    trained_items,
    validation_histories,
)
from genrec.pipeline.recommend_all import (
    RECOMMENDATIONS_MANIFEST,
    STAGING_SETTINGS,
    RecommendAllConfig,
    WrittenRecommendations,
    recommend_all,
)
from genrec.pipeline.recommendations import (
    Recommendations,
    RecommendConfig,
    describe_history,
    describe_recommendations,
    recommend,
)
from genrec.pipeline.tokenizer import (
    TOKENIZER_INPUT_FIELDS,
    FittedTokenizer,
    TokenizerTrainingConfig,
    TrainedTokenizerArtifact,
    fit_tokenizer,
    sid_metrics_for,
    tokenizer_config_from,
    train_tokenizer,
)
from genrec.pipeline.training import (
    TRAINING_MARKERS,
    RecommenderTrainingConfig,
    SASRecTrainingConfig,
    TrainedRecommender,
    full_disk_as_enospc,
    low_on_space,
    remove_training_output,
    train_recommender,
    train_sasrec,
)

__all__ = [
    "FUSION_GRIDS",
    "EXCLUDE_SEEN_CHOICES",
    "SASREC_DIR",
    "PRIOR_FIT",
    "PrepareConfig",
    "PreparedDataset",
    "prepare",
    "EmbedConfig",
    "embed",
    "TokenizerTrainingConfig",
    "TOKENIZER_INPUT_FIELDS",
    "tokenizer_config_from",
    "FittedTokenizer",
    "sid_metrics_for",
    "fit_tokenizer",
    "TrainedTokenizerArtifact",
    "train_tokenizer",
    "NEW_ITEM_USERS",
    "NEW_ITEM_EXPOSURE",
    "trained_items",
    "new_item_scorers",
    "validation_histories",
    "load_trained",
    "choose_fusion",
    "fit_new_items",
    "SASRecBeside",
    "RecommenderTrainingConfig",
    "TrainedRecommender",
    "train_recommender",
    "low_on_space",
    "full_disk_as_enospc",
    "TRAINING_MARKERS",
    "remove_training_output",
    "SASRecTrainingConfig",
    "train_sasrec",
    "EvaluateConfig",
    "evaluate",
    "RecommendConfig",
    "Recommendations",
    "recommend",
    "describe_recommendations",
    "describe_history",
    "RECOMMENDATIONS_MANIFEST",
    "RecommendAllConfig",
    "WrittenRecommendations",
    "recommend_all",
    "STAGING_SETTINGS",
    "AddItemsConfig",
    "AddedItems",
    "add_items",
]

"""Configs are typed end to end: no config or run-state dataclass has a field typed Any (a
``dict[str, Any]`` of options merged somewhere else), and a config file's sections become typed
configs in one place (``from_options``, ``recipe_configs``, ``method_config``)."""

import dataclasses
import typing
from typing import Any

import pytest

from genrec.compare.config import StudyConfig, Variant
from genrec.pipeline import (EvaluateConfig, RecommendAllConfig, RecommendConfig, RecommenderTrainingConfig,
                             SASRecBeside, SASRecTrainingConfig, TokenizerTrainingConfig)
from genrec.recommender.model_config import RecommenderConfig
from genrec.recommender.recipes import RECIPES, Recipe, recipe_configs
from genrec.recommender.sasrec_config import SASRecConfig
from genrec.recommender.trainer import TrainingState
from genrec.recommender.train_config import SASRecTrainConfig, TrainConfig

CONFIGS = (RecommenderTrainingConfig, SASRecTrainingConfig, SASRecBeside, TokenizerTrainingConfig, EvaluateConfig,
           RecommendConfig, RecommendAllConfig, TrainingState, Recipe, TrainConfig, SASRecTrainConfig,
           RecommenderConfig, SASRecConfig, StudyConfig, Variant)


def untyped_fields(cls) -> list[str]:
    """The fields of dataclass ``cls`` whose annotation is, or holds, Any (or a bare dict / list)."""
    def loose(hint) -> bool:
        if hint is Any or hint in (dict, list, tuple, object):
            return True
        return any(loose(arg) for arg in typing.get_args(hint))

    import genrec.tokenizer.base  # noqa: F401  (names a TYPE_CHECKING annotation refers to)
    import numpy as np

    namespace = {"TokenizerConfig": genrec.tokenizer.base.TokenizerConfig, "np": np}
    hints = typing.get_type_hints(cls, localns=namespace)
    return [f.name for f in dataclasses.fields(cls) if loose(hints[f.name])]


@pytest.mark.parametrize("cls", CONFIGS, ids=lambda cls: cls.__name__)
def test_no_config_or_state_field_is_untyped(cls):
    assert untyped_fields(cls) == []


def test_the_check_finds_a_planted_untyped_field():
    @dataclasses.dataclass
    class Planted:
        fine: int = 0
        options: dict[str, Any] = dataclasses.field(default_factory=dict)
        loose: dict | None = None

    assert untyped_fields(Planted) == ["options", "loose"]


def test_a_config_files_sections_become_the_recipes_configs_with_those_fields_changed():
    config = RecommenderTrainingConfig.from_options("data", recipe="cpu", train={"lr": 0.01}, model={"d_model": 64})
    assert isinstance(config.train, TrainConfig) and isinstance(config.model, RecommenderConfig)
    assert config.train.lr == 0.01 and config.train.batch_size == RECIPES["cpu"].train.batch_size
    assert config.model.d_model == 64 and config.model.item_text == RECIPES["cpu"].model.item_text
    assert RECIPES["cpu"].train.lr == 3e-3  # the recipe itself unchanged
    assert recipe_configs("tiger") == (TrainConfig(), RecommenderConfig())
    beside = SASRecBeside.from_options(train={"loss": "full"}, model={"d_model": 32})
    assert beside.train == SASRecTrainConfig(loss="full") and beside.model == SASRecConfig(d_model=32)
    sasrec = SASRecTrainingConfig.from_options("data", train={"max_steps": 5})
    assert sasrec.train.max_steps == 5 and sasrec.model == SASRecConfig()


def test_sasrecs_auto_loss_is_full_on_a_small_catalogue_and_sampled_on_a_large_one():
    config = SASRecTrainConfig()
    assert config.loss == "auto"
    assert config.loss_for(12_101) == "full" and config.loss_for(1_000_000) == "sampled"
    assert SASRecTrainConfig(loss="sampled").loss_for(10) == "sampled"

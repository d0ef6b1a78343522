"""The study config: one typed dataclass (``StudyConfig``) read from one JSON file, and the variants
(tokenizer method x input, R3-VAE ablations, lambda values) it expands to.

Imports no torch: ``genrec compare --help`` lists these fields from here.
"""

from __future__ import annotations

import copy
import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from genrec.core.errors import GenrecError
from genrec.pipeline import FUSION_GRIDS

# What a tokenizer reads: the items' text embeddings, or [unit text, W x collaborative vectors]
# (data_prep.collaborative: PPMI-SVD of item co-occurrence in the training sequences).
TEXT, TEXT_COLLABORATIVE = "text", "text+collaborative"
INPUTS = (TEXT, TEXT_COLLABORATIVE)
METHODS = ("r3vae", "rqvae", "rkmeans", "vqvae", "opq")  # = genrec.tokenizer.registry (checked in tests)
REFERENCE = "r3vae"  # paired differences are taken against this method on the same input
# A config field's value as the study file gives it: the file's "tokenizer" / "train" / "model"
# sections name fields of the typed configs (tokenizer.registry.method_config, recommender.recipes.
# recipe_configs turn them into those, in one place each, and reject unknown names).
Scalar = bool | int | float | str | None


@dataclass(frozen=True)
class Ablation:
    paper_row: str  # the row of the paper's Table 8
    options: tuple[tuple[str, Scalar], ...]  # R3-VAE config fields (tokenizer.r3vae.R3VAEConfig)


# Paper Table 8 (Beauty), as R3-VAE config fields. Key -> variant label r3vae-KEY.
ABLATIONS = {
    "no-ref": Ablation("w/o Reference Vector", (("use_reference", False),)),
    "ste": Ablation("w/o Rating Quantization (STE)", (("rating", "ste"),)),
    "no-sc": Ablation("w/o SC Regularization", (("use_sc", False),)),
    "no-pd": Ablation("w/o PD Regularization", (("use_pd", False),)),
}


def _opt(default, help: str):
    """A config field with its help line (shown by ``genrec compare --help``)."""
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: copy.deepcopy(default), metadata={"help": help})
    return field(default=default, metadata={"help": help})


DEFAULT_INPUTS = {"r3vae": [TEXT_COLLABORATIVE, TEXT], "rqvae": [TEXT_COLLABORATIVE],
                  "rkmeans": [TEXT_COLLABORATIVE, TEXT], "vqvae": [TEXT_COLLABORATIVE], "opq": [TEXT_COLLABORATIVE]}


@dataclass
class StudyConfig:
    """Everything one study run shares; the JSON config file holds any of these fields."""

    dataset: str | None = _opt(None, "prepared dataset folder or name (--dataset overrides; default: the last prepared)")
    out: str | None = _opt(None, "study folder (--out overrides; default DATASET/compare)")
    seeds: int = _opt(3, "seeds 0..N-1 for every variant (--seeds overrides)")
    inputs: dict[str, list[str]] = _opt(DEFAULT_INPUTS, "method -> the tokenizer inputs it runs on; methods "
                                        f"{', '.join(METHODS)}; inputs {TEXT!r} (item text embeddings) or "
                                        f"{TEXT_COLLABORATIVE!r} ([unit text, W x collaborative vectors])")
    collaborative_weight: float = _opt(1.0, f"W, the collaborative vectors' weight in the {TEXT_COLLABORATIVE!r} input")
    collaborative_dim: int = _opt(64, "size of the collaborative vectors")
    ablations: list[str] = _opt([], "R3-VAE ablations of paper Table 8: " + ", ".join(
        f"{key} ({a.paper_row})" for key, a in ABLATIONS.items()))
    lambdas: list[float] = _opt([], "R3-VAE lambda values (paper Table 9, e.g. [0.001, 0.01, 0.1]); the value "
                                    "R3-VAE already uses is its plain run, not a second one")
    ablation_input: str = _opt(TEXT_COLLABORATIVE, "the input of the ablation and lambda runs")
    encoder: str | None = _opt(None, "text encoder of the embeddings (default: as `genrec embed` chooses)")
    tokenizer: dict[str, Scalar] = _opt({}, "tokenizer config fields for every method, e.g. {\"codebook_size\": 256}")
    method_options: dict[str, dict[str, Scalar]] = _opt({}, "method -> its own tokenizer config fields, e.g. "
                                                         "{\"r3vae\": {\"epochs\": 60}}")
    recipe: str = _opt("cpu", "recommender recipe (recommender.recipes): cpu or tiger")
    train: dict[str, Scalar] = _opt({}, "recommender TrainConfig fields over the recipe's, e.g. "
                                     "{\"time_budget_minutes\": 12} or {\"max_steps\": 3000}")
    model: dict[str, Scalar] = _opt({"item_text": False, "item_ids": False},
                                 "recommender model (RecommenderConfig) fields over the recipe's; by default the "
                                 "T5 reads Semantic IDs alone (no item text or ids), so runs differ by tokenizer only")
    fusion_grid: list[float] = _opt(list(FUSION_GRIDS["prior"]), "transition-prior weights tried on validation users "
                                    "for the fused decoding, as train-recommender does ([0] = model alone only)")
    fusion_users: int = _opt(5000, "validation users the fusion weight is chosen on (0 = all)")
    beams: int = _opt(30, "beam width of the test evaluation (at least 30)")
    jobs: int = _opt(1, "runs at a time, each in its own process with one thread (--jobs overrides)")

    def check(self, source: str = "config") -> None:
        """One-line errors for anything the study cannot run with."""
        hints = typing.get_type_hints(StudyConfig)
        for item in dataclasses.fields(self):
            _check_type(f"{source}: {item.name}", getattr(self, item.name), hints[item.name])
        unknown = sorted(set(self.inputs) - set(METHODS))
        if unknown:
            raise GenrecError(f"{source}: inputs: unknown method(s) {', '.join(unknown)}; choose from {', '.join(METHODS)}")
        for method, inputs in self.inputs.items():
            bad = [name for name in inputs if name not in INPUTS]
            if bad or not inputs or len(set(inputs)) != len(inputs):
                raise GenrecError(f"{source}: inputs of {method} must be distinct names out of {', '.join(INPUTS)}, "
                                  f"got {inputs}")
        if self.ablation_input not in INPUTS:
            raise GenrecError(f"{source}: ablation_input must be one of {', '.join(INPUTS)}, got {self.ablation_input!r}")
        bad = [name for name in self.ablations if name not in ABLATIONS]
        if bad:
            raise GenrecError(f"{source}: unknown ablation(s) {', '.join(bad)}; choose from {', '.join(ABLATIONS)}")
        if set(self.method_options) - set(METHODS):
            raise GenrecError(f"{source}: method_options must map method names ({', '.join(METHODS)}) to options")
        if self.seeds < 1 or self.jobs < 1:
            raise GenrecError(f"{source}: seeds and jobs must be at least 1")
        if self.collaborative_weight <= 0 or self.collaborative_dim < 1:
            raise GenrecError(f"{source}: collaborative_weight must be > 0 and collaborative_dim >= 1")
        if any(value < 0 for value in self.lambdas) or not self.fusion_grid or any(w < 0 for w in self.fusion_grid):
            raise GenrecError(f"{source}: lambdas and fusion_grid must be numbers >= 0 (fusion_grid not empty)")
        if self.beams < 30:
            raise GenrecError(f"{source}: beams must be at least 30 (the largest K evaluated)")
        if self.fusion_users < 0:
            raise GenrecError(f"{source}: fusion_users must be >= 0")
        if not self.inputs and not self.ablations and not self.lambdas:
            raise GenrecError(f"{source}: nothing to run (no inputs, ablations or lambdas)")

    def r3vae_options(self) -> dict[str, Scalar]:
        """The tokenizer fields every R3-VAE run of the study starts from."""
        return {**self.tokenizer, **self.method_options.get(REFERENCE, {})}

    def variants(self, base_lambda: float) -> list[Variant]:
        """Every method on each of its inputs, then R3-VAE's ablations and lambda values on
        ``ablation_input``. ``base_lambda``: the lambda the plain R3-VAE runs use (a lambda equal to it
        is that run); the plain R3-VAE on ``ablation_input`` is added when ablations need it."""
        found = [Variant(method, method, name) for method, inputs in self.inputs.items() for name in inputs]
        extra = [Variant(f"{REFERENCE}-{key}", REFERENCE, self.ablation_input, ABLATIONS[key].options, "ablation")
                 for key in self.ablations]
        extra += [Variant(f"{REFERENCE}-lambda{value:g}", REFERENCE, self.ablation_input,
                          (("metric_weight", float(value)),), "lambda")
                  for value in dict.fromkeys(self.lambdas) if value != base_lambda]
        reference = Variant(REFERENCE, REFERENCE, self.ablation_input)
        if (self.ablations or self.lambdas) and reference not in found:
            found.append(reference)
        return found + extra


@dataclass(frozen=True)
class Variant:
    """One tokenizer configuration of the study: ``label`` (r3vae, r3vae-no-ref, ...) on ``input``."""

    label: str
    method: str
    input: str
    options: tuple[tuple[str, Scalar], ...] = ()  # tokenizer config fields on top of the study's (ablations, lambda)
    group: str = "method"  # method | ablation | lambda

    @property
    def name(self) -> str:
        return f"{self.label}@{self.input}"

    @property
    def reference(self) -> Variant:
        """The plain R3-VAE on the same input: what paired differences are taken against."""
        return Variant(REFERENCE, REFERENCE, self.input)


def _check_type(where: str, value: Any, hint: Any) -> None:
    """``value`` (read from JSON) against the field's annotation: str, int, float, bool, None, list[X],
    dict[str, X] and unions of these; one-line GenrecError naming the field otherwise."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return
    if origin in (typing.Union, types.UnionType):
        for option in args:
            try:
                return _check_type(where, value, option)
            except GenrecError:
                pass
        names = " or ".join("null" if a is type(None) else getattr(a, "__name__", str(a)) for a in args)
        raise GenrecError(f"{where} must be {names}, got {value!r}")
    if hint is type(None):
        ok = value is None
    elif hint is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif hint is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif origin is list:
        if not isinstance(value, list):
            raise GenrecError(f"{where} must be a list, got {value!r}")
        for item in value:
            _check_type(where, item, args[0])
        return
    elif origin is dict:
        if not isinstance(value, dict):
            raise GenrecError(f"{where} must be an object, got {value!r}")
        for key, item in value.items():
            _check_type(f"{where}.{key}", item, args[1])
        return
    else:
        ok = isinstance(value, hint)
    if not ok:
        raise GenrecError(f"{where} must be {getattr(hint, '__name__', hint)}, got {value!r}")


def load_study_config(path: str | Path | None, **overrides) -> StudyConfig:
    """The config file's fields (unknown ones refused) with the non-None ``overrides`` (CLI flags) on
    top, checked."""
    from genrec.core.config import apply_overrides, load_config_file

    source = str(path) if path else "config"
    config = apply_overrides(StudyConfig(), load_config_file(path), source)
    config = dataclasses.replace(config, **{k: v for k, v in overrides.items() if v is not None})
    config.check(source)
    return config


def fields_help() -> str:
    """One line per config field: name, JSON type, default, help (the epilog of ``genrec compare --help``)."""
    import json

    lines = []
    defaults = StudyConfig()
    for item in dataclasses.fields(StudyConfig):
        lines.append(f"  {item.name} (default {json.dumps(getattr(defaults, item.name))}):\n"
                     f"      {item.metadata['help']}")
    return "\n".join(lines)

"""Import directions inside the tokenizer package: base <- methods <- registry, and eval reads the
tokenizer's SC/PD instead of defining its own."""

import ast
from pathlib import Path

import genrec.eval.sid_metrics as sid_metrics
import genrec.tokenizer.regularizers as regularizers

TOKENIZER = Path(__file__).resolve().parents[1] / "tokenizer"
METHOD_MODULES = {"genrec.tokenizer.r3vae", "genrec.tokenizer.rqvae", "genrec.tokenizer.rkmeans", "genrec.tokenizer.opq"}


def imports(name: str) -> set[str]:
    tree = ast.parse((TOKENIZER / f"{name}.py").read_text())
    return {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}


def test_only_the_registry_knows_the_method_modules():
    assert METHOD_MODULES <= imports("registry")
    for path in TOKENIZER.glob("*.py"):
        if path.stem != "registry":
            assert not METHOD_MODULES & imports(path.stem), path.name
            assert path.stem == "pipeline" or "genrec.tokenizer.registry" not in imports(path.stem), path.name


def test_sid_metrics_use_the_training_regularizers():
    assert sid_metrics.semantic_cohesion is regularizers.semantic_cohesion
    assert sid_metrics.preference_discrimination is regularizers.preference_discrimination
    assert not any(isinstance(node, ast.FunctionDef) and node.name in ("semantic_cohesion", "preference_discrimination")
                   for node in ast.walk(ast.parse(Path(sid_metrics.__file__).read_text())))

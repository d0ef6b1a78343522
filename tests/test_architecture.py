"""The package structure: one import namespace, imports that only point down the layers
(CLI -> pipeline -> stages -> core), and the transformers major version the fast path reads."""

import ast
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STAGE_FOLDERS = {"data_prep": "genrec.data_prep", "tokenizer": "genrec.tokenizer",
                 "recommender": "genrec.recommender", "eval": "genrec.eval"}
TOP_LAYER = ("genrec.cli", "genrec.commands", "genrec.pipeline", "genrec.compare")


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            if node.module == "genrec":  # `from genrec import pipeline` imports genrec.pipeline
                names.update(f"genrec.{alias.name}" for alias in node.names if not alias.name.startswith("__"))
    return names


def python_files(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


def test_the_project_installs_no_top_level_name_but_genrec():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    setuptools = project["tool"]["setuptools"]
    assert all(name == "genrec" or name.startswith("genrec.") for name in setuptools["packages"])
    assert setuptools["package-dir"] == {f"genrec.{folder}": folder for folder in STAGE_FOLDERS}
    # From outside the repo (no checkout on sys.path) the stage folders exist only under genrec.
    probe = ("import importlib.util as u; import genrec.tokenizer.base, genrec.eval.ranking_metrics; "
             "print([n for n in ('tokenizer', 'recommender', 'data_prep', 'eval') if u.find_spec(n)])")
    out = subprocess.run([sys.executable, "-c", probe], cwd="/", capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("folder", ["genrec", *STAGE_FOLDERS, "tests", "bench"])
def test_nothing_imports_a_stage_folder_by_its_bare_name(folder):
    for path in python_files(folder):
        bare = {name for name in imported_modules(path) if name.split(".")[0] in STAGE_FOLDERS}
        assert not bare, f"{path.relative_to(ROOT)} imports {sorted(bare)}; use genrec.<stage>"


# What each stage may import besides itself and genrec.core: the stage graph has no cycle.
STAGE_DEPENDENCIES = {
    "data_prep": set(),
    "tokenizer": set(),
    "eval": {"data_prep", "tokenizer"},
    "recommender": {"data_prep", "tokenizer", "eval"},
}
# genrec.pipeline's modules, lowest first: each may import only those before it.
PIPELINE_ORDER = ("common", "data", "tokenizer", "new_items", "loading", "choices", "beside", "training", "evaluation",
                  "recommendations", "recommend_all", "add_items")


def layering_violations(root: Path) -> list[str]:
    """Every import in ``root``'s stage folders and pipeline package that points up or sideways:
    a stage importing the CLI / pipeline layer or a stage not below it, a pipeline module importing
    one after it (or the package's __init__)."""
    found = []
    for folder, package in STAGE_FOLDERS.items():
        allowed = {"genrec.core", package} | {STAGE_FOLDERS[d] for d in STAGE_DEPENDENCIES[folder]}
        for path in sorted((root / folder).rglob("*.py")):
            for name in imported_modules(path):
                if not name.startswith("genrec"):
                    continue
                if name == "genrec":  # the root package alone (its __version__), not everything under it
                    continue
                if not any(name == a or name.startswith(a + ".") for a in allowed):
                    found.append(f"{path.relative_to(root)} imports {name}")
    for index, module in enumerate(PIPELINE_ORDER):
        below = {f"genrec.pipeline.{m}" for m in PIPELINE_ORDER[:index]}
        path = root / "genrec" / "pipeline" / f"{module}.py"
        for name in imported_modules(path):
            if name.startswith("genrec.pipeline") and name not in below or name.startswith(TOP_LAYER[:2]):
                found.append(f"{path.relative_to(root)} imports {name}")
    return found


def test_stages_and_pipeline_modules_import_only_what_lies_below_them():
    assert sorted(p.stem for p in (ROOT / "genrec" / "pipeline").glob("*.py") if p.stem != "__init__") == \
        sorted(PIPELINE_ORDER)
    assert layering_violations(ROOT) == []


@pytest.mark.parametrize("planted, where", [
    ("recommender/planted.py", "from genrec.pipeline import evaluate\n"),
    ("eval/planted.py", "import genrec.recommender.model\n"),
    ("data_prep/planted.py", "from genrec.pipeline import prepare\n"),
    ("tokenizer/planted.py", "import genrec.serve\n"),
    ("recommender/planted.py", "from genrec import pipeline\n"),
    ("genrec/pipeline/data.py", "from genrec.pipeline.loading import load_trained\n"),
])
def test_a_planted_upward_import_is_caught(tmp_path, planted, where):
    for folder in [*STAGE_FOLDERS, "genrec/pipeline"]:
        shutil.copytree(ROOT / folder, tmp_path / folder, ignore=shutil.ignore_patterns("__pycache__"))
    target = tmp_path / planted
    target.write_text((target.read_text() if target.exists() else "") + where)
    assert any(v.startswith(planted) for v in layering_violations(tmp_path))


def test_core_imports_nothing_else_of_genrec():
    for path in python_files("genrec/core"):
        inside = {name for name in imported_modules(path) if name.startswith("genrec.")}
        assert all(name.startswith("genrec.core") for name in inside), (path, inside)


def test_transformers_is_the_major_version_the_fast_beam_search_was_written_for():
    """recommender.fast_beam reads T5 internals (layer[0].SelfAttention, compute_bias(...,
    past_seen_tokens=), EncDecAttention.k/v); a new major may move them. pyproject pins the major:
    when it is raised, re-check fast_beam against generate (tests/test_fast_beam.py) first."""
    import transformers

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    pin = next(d for d in project["project"]["dependencies"] if d.startswith("transformers"))
    assert pin == "transformers>=5.0,<6", pin
    major = int(transformers.__version__.split(".")[0])
    assert major == 5, f"transformers {transformers.__version__} is not 5.x: the fast beam search is untested on it"


def test_both_recommenders_are_the_one_protocol_and_nothing_probes_for_sids():
    from genrec.recommender.protocol import KINDS, RecommenderModel
    from genrec.recommender.recommender import Recommender
    from genrec.recommender.sasrec_recommender import SASRecRecommender

    for cls in (Recommender, SASRecRecommender):
        assert cls.kind in KINDS
        missing = [name for name in ("semantic_id", "with_policy", "recommend", "evaluate", "save", "load", "num_items")
                   if not hasattr(cls, name)]
        assert not missing, (cls.__name__, missing)
    assert RecommenderModel is not None
    for folder in ("genrec", "recommender", "bench"):
        for path in python_files(folder):
            assert "sids is None" not in path.read_text() and "sids is not None" not in path.read_text(), path


def test_the_readme_names_only_importable_classes():
    import importlib
    import re

    readme = (ROOT / "README.md").read_text()
    for dotted in set(re.findall(r"`(genrec(?:\.\w+)+\.[A-Z]\w+)`", readme)):
        module, _, name = dotted.rpartition(".")
        assert hasattr(importlib.import_module(module), name), dotted


MAX_FILE_LINES, MAX_FUNCTION_LINES = 500, 80  # small modules with one job each, functions a screen long


def oversized(root: Path) -> list[str]:
    """Product modules over MAX_FILE_LINES and functions over MAX_FUNCTION_LINES (tests and benches aside)."""
    found = []
    for folder in ("genrec", "recommender", "tokenizer", "data_prep", "eval"):
        for path in sorted((root / folder).glob("**/*.py")):
            text = path.read_text()
            if len(text.splitlines()) > MAX_FILE_LINES:
                found.append(f"{path.relative_to(root)}: {len(text.splitlines())} lines")
            for node in ast.walk(ast.parse(text)):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    lines = node.end_lineno - node.lineno + 1
                    if lines > MAX_FUNCTION_LINES:
                        found.append(f"{path.relative_to(root)}: {node.name} is {lines} lines")
    return found


def test_product_modules_and_functions_stay_small(tmp_path):
    assert oversized(ROOT) == []
    planted = tmp_path / "genrec"
    planted.mkdir()
    (planted / "big.py").write_text("def long():\n" + "    x = 1\n" * 90)
    assert oversized(tmp_path) == ["genrec/big.py: long is 91 lines"]

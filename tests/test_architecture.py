"""The package structure: one import namespace, imports that only point down the layers
(CLI -> pipeline -> stages -> core), and the transformers major version the fast path reads."""

import ast
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


@pytest.mark.parametrize("folder", list(STAGE_FOLDERS))
def test_stage_packages_never_import_the_layers_above_them(folder):
    for path in python_files(folder):
        upward = {name for name in imported_modules(path) if name.startswith(TOP_LAYER)}
        assert not upward, f"{path.relative_to(ROOT)} imports {sorted(upward)} (CLI/pipeline layer)"


# What each stage may import besides itself and genrec.core: the stage graph has no cycle.
STAGE_DEPENDENCIES = {
    "data_prep": set(),
    "tokenizer": set(),
    "eval": {"data_prep", "tokenizer"},
    "recommender": {"data_prep", "tokenizer", "eval"},
}


@pytest.mark.parametrize("folder", list(STAGE_FOLDERS))
def test_stages_depend_only_on_the_stages_below_them(folder):
    allowed = {"genrec", "genrec.core", STAGE_FOLDERS[folder]} | {STAGE_FOLDERS[d] for d in STAGE_DEPENDENCIES[folder]}
    for path in python_files(folder):
        for name in imported_modules(path):
            if name.startswith("genrec"):
                assert any(name == a or name.startswith(a + ".") for a in allowed), f"{path.relative_to(ROOT)}: {name}"


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

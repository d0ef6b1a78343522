"""Every committed file a page or a code comment names exists: `bench/results/...` paths in README,
docs/, the product code and the benches, and the relative links between the Markdown pages."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SOURCES = [path for folder in ("genrec", "recommender", "tokenizer", "data_prep", "eval", "bench")
           for path in sorted((ROOT / folder).glob("**/*.py"))]


def result_paths() -> list[tuple[str, str]]:
    """(where, path) for every bench/results path named (patterns such as {,-seed1} or hour-* left out,
    and `git show REV:bench/results/...`, a file of the history)."""
    found = []
    for source in PAGES + SOURCES:
        for path in re.findall(r"(?<![:\w/])bench/results/[A-Za-z0-9_./*-]+(?:\{[^}\s]*\})?[A-Za-z0-9_./*-]*", source.read_text()):
            if "{" not in path and "*" not in path:
                found.append((str(source.relative_to(ROOT)), path.rstrip(".,)")))
    return sorted(set(found))


def page_links() -> list[tuple[str, str]]:
    """(page, target) for every relative Markdown link of README and docs/."""
    links = []
    for page in PAGES:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            if not re.match(r"[a-z]+:", target) and not target.startswith("#"):
                links.append((str(page.relative_to(ROOT)), target))
    return links


def result_readme_paths() -> list[tuple[str, str]]:
    """(README, path) for each `../...` path and Markdown link of a bench/results folder's README."""
    found = []
    for readme in sorted((ROOT / "bench" / "results").glob("*/README.md")):
        text = readme.read_text()
        for path in re.findall(r"`(\.\./[A-Za-z0-9_./-]+)`", text) + re.findall(r"\]\(([^)\s:#]+)\)", text):
            if not re.search(r"[A-Z]{3,}", path):  # NAME-style placeholders
                found.append((str(readme.relative_to(ROOT)), path))
    return found


@pytest.mark.parametrize("readme, path", result_readme_paths())
def test_a_result_readme_path_resolves(readme, path):
    assert ((ROOT / readme).parent / path).exists(), f"{readme} names {path}, which does not exist"


def test_the_pages_name_result_files_and_link_each_other():
    assert len(result_paths()) > 30 and len(page_links()) > 20


@pytest.mark.parametrize("where, path", result_paths())
def test_a_named_result_file_exists(where, path):
    assert (ROOT / path).exists(), f"{where} names {path}, which is not in the repository"


@pytest.mark.parametrize("page, target", page_links())
def test_a_page_link_resolves(page, target):
    assert ((ROOT / page).parent / target.split("#")[0]).exists(), f"{page} links to {target}, which does not exist"

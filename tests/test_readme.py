"""What README.md and docs/ show a newcomer works: every `genrec` command line parses, and the
"your own data" example runs from nothing to recommendations."""

import re
import shlex
from pathlib import Path

import pytest

from genrec.cli import build_parser, main
from genrec.data_prep import embeddings

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def bash_blocks(text: str) -> list[str]:
    return re.findall(r"```bash\n(.*?)```", text, re.S)


def genrec_commands(block: str) -> list[list[str]]:
    """The argument lists of every `genrec ...` command in a shell block (heredoc bodies skipped;
    `&&`-chains split; leading VAR=value assignments dropped)."""
    commands, heredoc_end = [], None
    for line in block.splitlines():
        if heredoc_end is not None:
            heredoc_end = None if line.strip() == heredoc_end else heredoc_end
            continue
        start = re.search(r"<<'?(\w+)'?", line)
        if start:
            heredoc_end = start.group(1)
            continue
        for part in re.split(r"&&|;", line):
            words = shlex.split(part, comments=True)
            while words and re.fullmatch(r"\w+=\S*", words[0]):
                words = words[1:]
            if words and words[0] == "genrec":
                commands.append(words[1:])
    return commands


def all_commands() -> list[tuple[str, list[str]]]:
    return [(page.name, words) for page in PAGES for block in bash_blocks(page.read_text())
            for words in genrec_commands(block)]


def test_the_pages_show_commands():
    shown = {words[0] for _, words in all_commands()}
    assert {"prepare", "embed", "train-tokenizer", "train-recommender", "evaluate", "recommend", "demo"} <= shown


@pytest.mark.parametrize("page, words", all_commands(), ids=lambda value: " ".join(value)
                         if isinstance(value, list) else value)
def test_every_genrec_command_shown_parses(page, words):
    try:
        build_parser().parse_args(words)
    except SystemExit as exc:
        pytest.fail(f"{page}: `genrec {shlex.join(words)}` does not parse (exit {exc.code})")


def own_data_example() -> str:
    section = (ROOT / "README.md").read_text().split("## Your own data", 1)[1]
    return bash_blocks(section)[0]


def run_example(block: str) -> None:
    """Write the heredoc files and run each `genrec` line in this process, as a shell would."""
    lines, index = block.splitlines(), 0
    while index < len(lines):
        line = lines[index]
        heredoc = re.fullmatch(r"cat > (\S+) <<'(\w+)'", line.strip())
        if heredoc:
            end = lines.index(heredoc.group(2), index + 1)
            Path(heredoc.group(1)).write_text("\n".join(lines[index + 1:end]) + "\n")
            index = end + 1
            continue
        words = shlex.split(line, comments=True)
        if words:
            assert words[0] == "genrec", f"the example runs only genrec commands, not {line!r}"
            assert main(words[1:]) == 0, line
        index += 1


@pytest.fixture
def offline_workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("genrec.core.layout.DATA_ROOT", Path("data"))
    monkeypatch.setattr(embeddings, "hub_reachable", lambda timeout=3.0: False)
    return tmp_path


def test_own_data_example_runs_to_recommendations(offline_workdir, capsys):
    """About 15 s: worth it, this is the path a newcomer takes with their own CSV."""
    run_example(own_data_example())
    out = capsys.readouterr().out
    assert "4 users, 6 items, 16 interactions" in out
    assert "for user 1 (ann), history of 4 items" in out and "for the given history, history of 2 items" in out
    assert "higher is better" in out


def results_rows() -> list[tuple[str, list[str], str]]:
    """(row label, its metric numbers, the file it names) for every row of README's Results tables."""
    section = (ROOT / "README.md").read_text().split("## Results", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if not line.startswith("|") or set(cells[0]) <= {"-"} or not re.search(r"\d\.\d{4}", line):
            continue
        source = re.fullmatch(r"`([^`]+)`", cells[-1])
        assert source, f"README results row names no result file: {line!r}"
        rows.append((cells[0], re.findall(r"\d\.\d{4}", " ".join(cells[1:-1])), source.group(1)))
    return rows


def test_readme_results_have_rows():
    rows = results_rows()
    assert len(rows) >= 8 and any(label.startswith("published") for label, _, _ in rows)


@pytest.mark.parametrize("label, numbers, source", results_rows(), ids=lambda value: value if isinstance(value, str) else None)
def test_every_readme_result_number_is_in_the_file_it_names(label, numbers, source):
    """A number in README's Results tables is copied from the committed file that row names."""
    path = ROOT / source
    assert path.is_file(), f"{label}: {source} does not exist"
    text = path.read_text()
    missing = [number for number in numbers if number not in text]
    assert not missing, f"{label}: {missing} not in {source}"


@pytest.mark.parametrize("label, numbers, source", results_rows(), ids=lambda value: value if isinstance(value, str) else None)
def test_each_readme_recall_ndcg_pair_is_one_row_of_its_file(label, numbers, source):
    """Recall@10 and NDCG@10 shown together come from one line of the file (no pair mixed across rows)."""
    lines = (ROOT / source).read_text().splitlines()
    for recall, ndcg in zip(numbers[::2], numbers[1::2]):
        assert any(recall in line and ndcg in line for line in lines), f"{label}: {recall} / {ndcg} on no line of {source}"

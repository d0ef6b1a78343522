"""The README's Python API example runs as written (offline: bundled MiniLM embeddings)."""

import re
from pathlib import Path

from genrec.data_prep import embeddings

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_example() -> str:
    section = README.read_text().split("## Python API", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_python_example_runs_the_whole_pipeline(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # the example writes data/demo relative to the working directory
    monkeypatch.setattr(embeddings, "hub_reachable", lambda timeout=3.0: False)
    monkeypatch.setattr("genrec.core.layout.DATA_ROOT", Path("data"))
    exec(compile(readme_example(), "README.md", "exec"), {})
    lines = capsys.readouterr().out.strip().splitlines()  # training status lines, then the example's prints
    recall = float(lines[-6])
    assert 0.0 <= recall <= 1.0
    ranked = lines[-5:]
    assert [line.split()[0] for line in ranked] == ["1", "2", "3", "4", "5"]  # five real items with titles
    assert all(len(line.split()) > 1 for line in ranked)
    assert (tmp_path / "data" / "demo" / "recommender" / "genrec.json").is_file()
    assert (tmp_path / "data" / "demo" / "recommender" / "eval_test.json").is_file()
    assert not (tmp_path / "data" / "demo" / "sasrec").exists()  # sasrec_beside=None: the T5 alone

"""bench.serve_soak for a few seconds: many clients with cancels and fresh histories mixed in, every
answer checked."""

import json

import pytest

from bench import serve_soak
from tests.serve_fixtures import trained  # noqa: F401 - pytest fixture


@pytest.mark.slow  # a benchmark's own check, heavy: run with -m slow
def test_a_short_soak_loses_and_mixes_up_nothing(trained, tmp_path):
    out = tmp_path / "soak"
    code = serve_soak.main(["--dataset", str(trained / "data"), "--model", str(trained / "model"), "--out", str(out),
                            "--clients", "8", "--minutes", "0.1", "--inputs", "20", "--cancel-share", "0.2",
                            "--window", "2", "--fresh-share", "0.3", "--history-lengths", "5-40"])
    report = json.loads((out / "serve_soak.json").read_text())
    result = report["result"]
    assert code == 0, result["examples"]
    assert result["lost"] == result["errors"] == result["mismatched"] == 0
    assert result["answered"] > 20 and result["cancelled"] > 0 and 0 < result["fresh"] < result["answered"]
    assert report["settings"]["history_lengths"] == [5, 40]
    assert len(result["windows"]) == 3 and all(w["requests"] > 0 for w in result["windows"])
    assert result["rss_mb"]["start"] > 0 and result["rss_mb"]["end"] > 0
    assert all(w["rss_mb"] is None or w["rss_mb"] > 0 for w in result["windows"])
    assert (out / "serve_soak.png").stat().st_size > 0
    markdown = (out / "serve_soak.md").read_text()
    assert "--minutes 0.1" in markdown and "| from s |" in markdown and "mismatched 0" in markdown

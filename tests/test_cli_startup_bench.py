"""bench/cli_startup.py: times fresh processes and reports ratios to the baseline of the same run."""

import json
import sys

import pytest

import bench.cli_startup as startup


def test_report_has_every_case_with_a_ratio_to_the_baseline(tmp_path, monkeypatch):
    fast = {name: case for name, case in startup.cases().items() if "old parser" not in name}  # skip the 4 s one
    monkeypatch.setattr(startup, "cases", lambda: fast)
    assert startup.main(["--repeats", "1", "--out", str(tmp_path), "--name", "t"]) == 0
    report = json.loads((tmp_path / "t.json").read_text())
    assert report["command"].startswith("python -m bench.cli_startup")
    assert set(report["cases"]) == set(fast)
    assert report["cases"]["python -c pass (baseline)"]["ratio_to_baseline"] == 1.0
    assert "genrec --help" in (tmp_path / "t.md").read_text()


def test_a_case_with_the_wrong_exit_code_is_an_error():
    with pytest.raises(RuntimeError, match="expected 0"):
        startup.time_case([sys.executable, "-c", "raise SystemExit(3)"], 0, repeats=1)

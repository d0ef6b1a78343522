"""bench.scale: growth exponents and the report from made-up stage results (fast), and one tiny
size end to end, every stage in its own process (slow: about a minute and a half)."""

import json

import pytest

import bench.scale as scale


def fake_run(items, wall, per_step, users_per_s, rss):
    stage = {"wall_s": wall, "peak_rss_mb": rss}
    return {"items": items, "users": 2 * items, "prepare": dict(stage), "tokenizer": dict(stage),
            "train": {**stage, "s_per_step": per_step, "steps": 10},
            "decode": {**stage, "users_per_s": users_per_s, "users": 100},
            "recommend_all": {"skipped": "too many users"},
            "serve": {"wall_s": 3.0, "peak_rss_mb": None, "p50_ms": 10, "p99_ms": 20, "clients": 8},
            "sasrec": {**stage, "s_per_step": 2 * per_step if items > 1000 else per_step, "steps": 10,
                       "loss": "sampled", "negatives": 1024}}


def test_growth_exponents_measure_cost_against_size():
    runs = [fake_run(1000, 2.0, 0.5, 100.0, 100.0), fake_run(10_000, 20.0, 0.5, 50.0, 1000.0)]
    growth = scale.growth(runs, list(scale.STAGES))
    assert len(growth) == 1 and (growth[0]["from"], growth[0]["to"]) == (1000, 10_000)
    assert growth[0]["prepare"] == {"time": 1.0, "peak_rss": 1.0}  # 10x the time for 10x the items
    assert growth[0]["train"]["time"] == 0.0  # per step, not per stage
    assert growth[0]["decode"]["time"] == pytest.approx(0.3, abs=0.01)  # per user: half the users/s
    assert growth[0]["recommend_all"] == {"time": None, "peak_rss": None}
    assert growth[0]["serve"] == {"time": 0.0, "peak_rss": None}
    assert growth[0]["sasrec"]["time"] == pytest.approx(0.3, abs=0.01)  # per step: twice the time at 10x
    report = {"command": "python -m bench.scale", "hardware_line": "test box", "settings": {"threads": 1},
              "runs": runs, "growth": growth}
    text = scale.markdown(report, list(scale.STAGES))
    assert "| 10,000 | 20,000 | train | 20.0 | 1000.0 | 0.5 s/step (10 steps) |" in text
    assert "| sasrec | 20.0 | 1000.0 | 1.0 s/step (10 steps, sampled softmax, 1024 negatives) |" in text
    assert "too many users" in text and "| 1,000 -> 10,000 | prepare | 1.0 | 1.0 |" in text


def test_bad_sizes_or_stages_are_one_line_errors(capsys):
    assert scale.main(["--sizes", "5"]) == 2
    assert scale.main(["--sizes", "100", "--stages", "prepare,fly"]) == 2
    assert "error: --sizes" in capsys.readouterr().err


@pytest.mark.slow
def test_a_tiny_size_end_to_end(tmp_path):
    assert scale.main(["--sizes", "400", "--train-steps", "2", "--decode-users", "10", "--serve-requests", "8",
                       "--out", str(tmp_path / "out"), "--work", str(tmp_path / "work")]) == 0
    report = json.loads((tmp_path / "out" / "scale.json").read_text())
    run = report["runs"][0]
    assert (run["items"], run["users"]) == (400, 800) and report["growth"] == []
    for stage in scale.STAGES:
        assert "error" not in run[stage] and run[stage]["wall_s"] > 0, stage
    assert run["train"]["steps"] == 2 and run["decode"]["users_per_s"] > 0 and run["recommend_all"]["users"] == 800
    assert run["sasrec"]["steps"] == 2 and run["sasrec"]["loss"] == "sampled"
    assert run["serve"]["errors"] == 0 and run["serve"]["p99_ms"] >= run["serve"]["p50_ms"] > 0
    assert "Hardware:" in (tmp_path / "out" / "scale.md").read_text()
    # recommend --all again, as two accelerate processes, over the same work folder.
    assert scale.main(["--sizes", "400", "--stages", "recommend_all", "--all-processes", "2",
                       "--out", str(tmp_path / "out2"), "--work", str(tmp_path / "work")]) == 0
    two = json.loads((tmp_path / "out2" / "scale.json").read_text())["runs"][0]["recommend_all"]
    assert "error" not in two and two["users"] == 800 and two["processes"] == 2

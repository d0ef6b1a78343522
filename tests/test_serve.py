"""``genrec serve``: the JSON API, its errors, micro-batching, and the web page in a real browser."""

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import numpy as np
import pytest
from fastapi.testclient import TestClient

from bench.common import stop_process
from genrec.serve import create_app
from tests.browser import CHROMIUM, FLAGS, HeadlessChromium
from tests.serve_fixtures import client, loaded, trained  # noqa: F401 - pytest fixtures


def test_health_and_page(client):
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["num_users"] == 20 and health["num_items"] == 30
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "/recommend" in page.text and "URLSearchParams" in page.text


def test_items_and_users_by_number_or_raw_id(client, loaded):
    recommender, dataset = loaded
    for key in ("7", "I7"):
        item = client.get(f"/items/{key}").json()
        assert item == {"item_id": 7, "raw_id": "I7", "title": "item 7", "text": "Title: item 7",
                        "sid": recommender.sids.codes_of([7])[0].tolist()}
    for key in ("4", "U4"):
        user = client.get(f"/users/{key}").json()
        assert user["user_id"] == 4 and user["raw_id"] == "U4"
        assert [row["item_id"] for row in user["history"]] == dataset.history(4)
        assert user["history"][0]["title"] == dataset.item_title(dataset.history(4)[0])


def test_recommend_for_a_user_or_a_history_equals_the_recommender(client, loaded):
    recommender, dataset = loaded
    body = client.post("/recommend", json={"user": "U3", "top_k": 5, "exclude_seen": False}).json()
    items, scores = recommender.recommend([dataset.history(3)], 5, users=[3], beams=20)
    assert body["user"] == 3 and body["user_raw_id"] == "U3"
    assert [row["item_id"] for row in body["history"]] == dataset.history(3)
    picks = body["recommendations"]
    assert [row["rank"] for row in picks] == [1, 2, 3, 4, 5]
    assert [row["item_id"] for row in picks] == items[0].tolist()
    np.testing.assert_allclose([row["score"] for row in picks], scores[0], rtol=1e-5, atol=1e-6)
    first = picks[0]
    assert first["raw_id"] == dataset.item_raw_id(first["item_id"]) and first["title"].startswith("item ")
    assert first["sid"] == recommender.sids.codes_of([first["item_id"]])[0].tolist()

    body = client.post("/recommend", json={"history": ["I2", 3, "4"]}).json()  # exclude_seen by default
    assert body["user"] is None and [row["item_id"] for row in body["history"]] == [2, 3, 4]
    ids = [row["item_id"] for row in body["recommendations"]]
    assert len(ids) == 10 and not {2, 3, 4} & set(ids)
    items, _ = recommender.recommend([[2, 3, 4]], 10, users=[0], beams=20, exclude_seen=True)
    assert ids == items[0].tolist()


@pytest.mark.parametrize("request_body, status, message", [
    ({"user": "nobody"}, 404, "unknown user"),
    ({"history": ["I1", "NOPE"]}, 404, "unknown item"),
    ({"history": []}, 422, "history is empty"),
    ({}, 422, "exactly one of"),
    ({"user": "1", "history": ["I1"]}, 422, "exactly one of"),
    ({"user": "1", "top_k": 0}, 422, "top_k"),
    ({"user": "1", "top_k": 101}, 422, "top_k"),
    ({"user": "1", "top_k": "many"}, 422, "top_k"),
    ({"user": "1", "exclude_seen": "perhaps"}, 422, "exclude_seen"),
    ({"history": "I1"}, 422, "history"),
    ({"user": True}, 422, "user"),
    ({"user": "1", "topk": 5}, 422, "topk: Extra inputs are not permitted"),
])
def test_bad_requests_are_4xx_with_a_message(client, request_body, status, message):
    response = client.post("/recommend", json=request_body)
    assert response.status_code == status, response.text
    assert message in response.json()["detail"]


def test_malformed_json_and_unknown_ids_in_paths(client):
    response = client.post("/recommend", content=b'{"user": ', headers={"content-type": "application/json"})
    assert response.status_code == 422 and "malformed JSON body" in response.json()["detail"]
    response = client.post("/recommend", content=b"[1, 2]", headers={"content-type": "application/json"})
    assert response.status_code == 422 and isinstance(response.json()["detail"], str)
    for path, message in (("/items/0", "unknown item"), ("/items/NOPE", "unknown item"),
                          ("/users/999", "unknown user")):
        response = client.get(path)
        assert response.status_code == 404 and message in response.json()["detail"]


def _requests():
    """A mix that must not be mixed up: users, histories, two top_k values, exclude_seen on and off."""
    mix = [{"user": str(user), "top_k": 5 if user % 2 else 10, "exclude_seen": user % 3 == 0} for user in range(1, 21)]
    mix += [{"history": [f"I{i}", f"I{i + 1}"], "top_k": 5, "exclude_seen": i % 2 == 0} for i in range(1, 9)]
    return mix


def test_concurrent_requests_get_the_answers_single_requests_get(loaded):
    with TestClient(create_app(*loaded, max_wait_ms=50)) as client:
        single = [client.post("/recommend", json=body).json() for body in _requests()]
        with ThreadPoolExecutor(16) as pool:
            together = list(pool.map(lambda body: client.post("/recommend", json=body).json(), _requests() * 2))
        batching = client.get("/health").json()["batching"]
    assert batching["largest_batch"] > 1  # they really were decoded together
    for alone, batched in zip(single * 2, together):
        assert [r["item_id"] for r in batched["recommendations"]] == [r["item_id"] for r in alone["recommendations"]]
        assert batched["history"] == alone["history"] and batched["user"] == alone["user"]
        np.testing.assert_allclose([r["score"] for r in batched["recommendations"]],
                                   [r["score"] for r in alone["recommendations"]], rtol=1e-4, atol=1e-5)


def test_the_batcher_decodes_concurrent_requests_in_one_call(loaded, monkeypatch):
    recommender, dataset = loaded
    sizes, original = [], recommender.recommend

    def counting(histories, *args, **kwargs):
        sizes.append(len(histories))
        return original(histories, *args, **kwargs)

    monkeypatch.setattr(recommender, "recommend", counting)
    start = threading.Barrier(16)

    def ask(user):
        start.wait()
        return client.post("/recommend", json={"user": str(user)}).status_code

    with TestClient(create_app(recommender, dataset, max_wait_ms=300)) as client:
        with ThreadPoolExecutor(16) as pool:
            codes = list(pool.map(ask, range(1, 17)))
    assert codes == [200] * 16
    assert sum(sizes) == 16 and len(sizes) <= 2 and max(sizes) >= 8, sizes


# -- the real server and a real browser -----------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_until_up(url: str, process, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"genrec serve exited with {process.returncode}: {process.stdout.read()}")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"genrec serve did not answer {url} within {seconds} s")


@contextmanager
def _served(trained):
    """``genrec serve`` on a free loopback port in its own process; yields its base URL."""
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "genrec.cli", "serve", "--dataset", str(trained / "data"), "--model",
         str(trained / "model"), "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"})
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_until_up(f"{base}/health", server)
        yield base
    finally:
        stop_process(server, timeout=10)


def _post(url: str, body: dict) -> dict:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request) as response:
        return json.load(response)


def _need_chromium():
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} not found: install it with `apt-get install -y chromium` to run this test")


@pytest.mark.slow
def test_the_page_shows_history_and_recommendations_in_headless_chromium(trained, tmp_path):
    _need_chromium()
    with _served(trained) as base:
        expected = _post(f"{base}/recommend", {"user": "1"})
        try:
            dom = subprocess.run(
                [CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'chrome'}", "--virtual-time-budget=5000",
                 "--dump-dom", f"{base}/?user=1"], capture_output=True, text=True, timeout=120).stdout
        finally:
            shutil.rmtree(tmp_path / "chrome", ignore_errors=True)
    assert "user 1 (U1)" in dom, dom[-2000:]
    for row in expected["history"] + expected["recommendations"]:
        assert f"<li class=\"item\">{row['title']} <span class=\"id\">{row['raw_id']}</span>" in dom


PAGE_PICKS = """[...document.querySelectorAll('#recommendations li')].map(li => [li.querySelector('.id').textContent,
  li.querySelector('.because') ? li.querySelector('.because').textContent : '',
  li.querySelector('.influence') ? li.querySelector('.influence').textContent : ''])"""


def _to_fixed(value: float) -> str:
    """JavaScript's ``value.toFixed(2)`` for a positive number (a tie goes up, on the exact binary value)."""
    from decimal import ROUND_HALF_UP, Decimal

    return str(Decimal(value).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def _submit(browser, user: str, rule: str) -> None:
    """Type the user and the rule into the page's inputs and press its button, as a person would."""
    browser.evaluate(f"""document.getElementById('user').value = {json.dumps(user)};
        document.getElementById('rule').value = {json.dumps(rule)};
        document.getElementById('recommendations').replaceChildren();
        document.getElementById('error').textContent = '';
        document.querySelector('#form button').click(); true""")


@pytest.mark.slow
def test_the_pages_controls_take_a_rule_and_show_reasons_in_headless_chromium(trained, tmp_path):
    _need_chromium()
    with _served(trained) as base:
        unruled = _post(f"{base}/recommend", {"user": "2"})["recommendations"]
        rule = {"exclude": [row["raw_id"] for row in unruled[:3]]}
        expected = _post(f"{base}/recommend", {"user": "2", "rule": rule, "influence": True})["recommendations"]
        browser = HeadlessChromium(str(tmp_path / "chrome"))
        try:
            browser.open(f"{base}/")
            browser.wait_for("document.readyState === 'complete' && document.getElementById('form') !== null")
            _submit(browser, "2", json.dumps(rule))
            browser.wait_for("document.querySelectorAll('#recommendations li').length > 0")
            picks = browser.evaluate(PAGE_PICKS)
            assert [raw for raw, _, _ in picks] == [row["raw_id"] for row in expected]
            assert not {raw for raw, _, _ in picks} & set(rule["exclude"])
            for (_, because, influence), row in zip(picks, expected):
                shown = ", ".join(f"{r['title']} ({r['count']}\u00d7)" for r in row["because"])
                assert because == (f"because of {shown}" if row["because"] else "")
                shown = ", ".join(f"{r['title']} (\u2212{_to_fixed(r['drop'])})" for r in row["influence"])
                assert influence == (f"without {shown}" if row["influence"] else "")
            assert any(because for _, because, _ in picks) and any(influence for _, _, influence in picks)
            assert "rule=" in browser.evaluate("location.search")  # the URL keeps the rule for a reload
            _submit(browser, "2", "{not json")
            assert browser.wait_for("document.getElementById('error').textContent").startswith("rule: not JSON")
            _submit(browser, "2", '{"where": {"no_such_field": 1}}')
            error = browser.wait_for("document.getElementById('error').textContent")
            assert "no_such_field" in error and "\n" not in error
            assert browser.evaluate("document.querySelectorAll('#recommendations li').length") == 0
        finally:
            browser.close()


def test_a_taken_port_is_a_one_line_error_before_the_model_loads(trained, capsys):
    from genrec.cli import main

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", "--model", str(trained / "nowhere"), "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert "cannot listen on 127.0.0.1" in err and err.count("\n") == 1


def test_load_test_script_reports_every_level(trained, tmp_path):
    from bench import serve_load

    out = tmp_path / "load"
    assert serve_load.main(["--dataset", str(trained / "data"), "--model", str(trained / "model"), "--out", str(out),
                            "--levels", "1,4", "--requests", "8", "--warmup", "2", "--time-limit", "30"]) == 0
    report = json.loads((out / "serve_load.json").read_text())
    assert [level["clients"] for level in report["levels"]] == [1, 4]
    for level in report["levels"]:
        assert level["requests"] == 8 and level["errors"] == 0 and level["p50_ms"] <= level["p99_ms"]
    assert "| 4 |" in (out / "serve_load.md").read_text()

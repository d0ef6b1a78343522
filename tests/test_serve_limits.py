"""``genrec serve`` under faults and hostile input: cancelled and timed-out requests, a full queue,
oversized bodies and histories, odd ids, strict types, HEAD, security headers and offline docs."""

import asyncio
import base64
import hashlib
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import numpy as np
import pytest
from fastapi.testclient import TestClient

from genrec.core.limits import MAX_BODY_BYTES, MAX_ECHOED_HISTORY, MAX_HISTORY
from genrec.serve import PAGE, MicroBatcher, create_app
from tests.serve_fixtures import client, loaded, trained  # noqa: F401 - pytest fixtures


class Gate:
    """Wraps ``recommender.recommend`` so a test can hold a decode in progress and release it."""

    def __init__(self, recommender, monkeypatch):
        self.started, self.release, self.original = threading.Event(), threading.Event(), recommender.recommend
        monkeypatch.setattr(recommender, "recommend", self)

    def __call__(self, *args, **kwargs):
        self.started.set()
        self.release.wait(10)
        return self.original(*args, **kwargs)


def _one_line_detail(response) -> str:
    detail = response.json()["detail"]
    assert isinstance(detail, str) and "\n" not in detail and "Traceback" not in detail
    return detail


def test_a_request_cancelled_while_its_batch_decodes_leaves_the_batcher_working(loaded, monkeypatch):
    recommender, dataset = loaded
    gate = Gate(recommender, monkeypatch)
    batcher = MicroBatcher(recommender, max_wait_ms=0)

    async def scenario():
        first = asyncio.ensure_future(batcher.recommend(dataset.history(1), 1, 5, False))
        await asyncio.get_running_loop().run_in_executor(None, gate.started.wait, 5)
        first.cancel()  # the client went away while its batch decodes
        await asyncio.sleep(0.05)
        gate.release.set()
        return await asyncio.wait_for(batcher.recommend(dataset.history(2), 2, 5, False), 10)

    try:
        items, _ = asyncio.run(scenario())
    finally:
        gate.release.set()
        batcher.stop()
    expected, _ = gate.original([dataset.history(2)], 5, users=[2], beams=20)
    assert items.tolist() == expected[0].tolist()


@contextmanager
def one_decoding_one_queued(loaded, monkeypatch, **options):
    """A served app (``options`` for create_app) whose model is held on a first request while a
    second waits in the queue; yields (client, gate, first, second) with the two as futures."""
    gate = Gate(loaded[0], monkeypatch)
    with TestClient(create_app(*loaded, max_wait_ms=0, **options)) as client, ThreadPoolExecutor(2) as pool:
        try:
            decoding = pool.submit(client.post, "/recommend", json={"user": "U1"})
            assert gate.started.wait(5)
            queued = pool.submit(client.post, "/recommend", json={"user": "U2"})
            deadline = time.monotonic() + 5
            while client.get("/health").json()["queue"]["waiting"] < 1 and time.monotonic() < deadline:
                time.sleep(0.01)
            yield client, gate, decoding, queued
        finally:
            gate.release.set()


def test_a_timed_out_request_is_503_and_a_queued_one_is_dropped(loaded, monkeypatch):
    with one_decoding_one_queued(loaded, monkeypatch, timeout_s=0.5) as (client, gate, decoding, queued):
        for response in (decoding.result(10), queued.result(10)):
            assert response.status_code == 503 and response.headers["retry-after"] == "1"
            assert "no answer within 0.5 s" in _one_line_detail(response)
        gate.release.set()
        assert client.post("/recommend", json={"user": "U3"}).status_code == 200
        queue = client.get("/health").json()["queue"]
    assert queue["timeouts"] == 2 and queue["dropped"] == 1 and queue["waiting"] == 0


def test_a_full_queue_is_503_with_retry_after(loaded, monkeypatch):
    with one_decoding_one_queued(loaded, monkeypatch, max_queue=1) as (client, gate, decoding, queued):
        refused = client.post("/recommend", json={"user": "U3"})
        gate.release.set()
        assert decoding.result(10).status_code == 200 and queued.result(10).status_code == 200
    assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
    assert "1 requests are already waiting" in _one_line_detail(refused)


def test_a_body_over_the_limit_is_413_by_header_or_while_streaming(client):
    big = b'{"history": [' + b'"I1",' * (MAX_BODY_BYTES // 5) + b'"I1"]}'
    response = client.post("/recommend", content=big, headers={"content-type": "application/json"})
    assert response.status_code == 413 and "over 1,000,000 bytes" in _one_line_detail(response)

    def chunks():  # no Content-Length: the server has to count
        for start in range(0, len(big), 65536):
            yield big[start:start + 65536]

    response = client.post("/recommend", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413 and "over 1,000,000 bytes" in _one_line_detail(response)
    response = client.post("/recommend", content=b'{"user": "U1"}',
                           headers={"content-type": "application/json", "content-length": "x"})
    assert response.status_code == 400


def test_history_length_is_bounded_and_the_echo_is_capped(client):
    response = client.post("/recommend", json={"history": ["I1"] * (MAX_HISTORY + 1)})
    assert response.status_code == 422 and f"at most {MAX_HISTORY}" in _one_line_detail(response)
    history = [f"I{1 + i % 30}" for i in range(MAX_HISTORY)]
    body = client.post("/recommend", json={"history": history, "top_k": 5, "exclude_seen": False}).json()
    assert body["history_length"] == MAX_HISTORY and len(body["history"]) == MAX_ECHOED_HISTORY
    assert [row["raw_id"] for row in body["history"]] == history[-MAX_ECHOED_HISTORY:]
    assert len(body["recommendations"]) == 5


def test_a_slow_lookup_does_not_stall_other_requests(loaded, monkeypatch):
    recommender, dataset = loaded
    original = dataset.item_id_for

    def slow(item):
        if item == "I29":
            time.sleep(1.5)
        return original(item)

    monkeypatch.setattr(dataset, "item_id_for", slow)
    with TestClient(create_app(*loaded)) as client, ThreadPoolExecutor(1) as pool:
        long_one = pool.submit(client.post, "/recommend", json={"history": ["I29"]})
        time.sleep(0.3)
        started = time.perf_counter()
        assert client.get("/health").status_code == 200 and client.get("/items/I3").status_code == 200
        waited = time.perf_counter() - started
        assert long_one.result(10).status_code == 200
    assert waited < 0.8, f"/health waited {waited:.2f} s behind a slow lookup"


@pytest.mark.parametrize("method, path, body", [
    ("GET", "/users/²", None), ("GET", "/items/²", None), ("GET", "/items/%00", None),
    ("GET", "/users/%00", None), ("GET", "/items/%ED%A0%80", None), ("GET", "/items/" + "9" * 5000, None),
    ("POST", "/recommend", b'{"user": "\\u00b2"}'), ("POST", "/recommend", b'{"user": "\\u0000"}'),
    ("POST", "/recommend", b'{"history": ["I1", "\\ud800"]}'), ("POST", "/recommend", b'{"user": "\\udfff"}'),
    ("POST", "/recommend", b'{"\\ud800": 1}'), ("POST", "/recommend", b'{"user": "U1", "top_k": "5"}'),
    ("POST", "/recommend", b'{"user": "U1", "exclude_seen": "yes"}'),
    ("POST", "/recommend", b'{"user": "U1", "top_k": 5.0}'), ("POST", "/recommend", b'{"user": "U1", "exclude_seen": 1}'),
    ("POST", "/recommend", b'{"user": 1e400}'), ("POST", "/recommend", b'{"user": 99999999999999999999999999}'),
    ("POST", "/recommend", b'\xff\xfe'), ("POST", "/recommend", b'{"user": "' + b"x" * 300 + b'"}'),
])
def test_hostile_ids_and_loose_types_are_one_line_4xx(client, method, path, body):
    response = client.request(method, path, content=body, headers={"content-type": "application/json"})
    assert 400 <= response.status_code < 500, response.text
    _one_line_detail(response)


def test_head_is_answered_like_get_without_a_body(client):
    for path in ("/health", "/", "/items/I1", "/users/U1", "/openapi.json"):
        get, head = client.get(path), client.head(path)
        assert head.status_code == get.status_code == 200 and head.content == b""
        assert head.headers["content-type"] == get.headers["content-type"]
    assert client.head("/items/NOPE").status_code == 404
    assert client.head("/recommend").status_code == 405


def _sha256(text: str) -> str:
    return base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()


def test_security_headers_and_a_page_policy_that_allows_only_its_own_script(client):
    for response in (client.get("/"), client.get("/health"), client.post("/recommend", json={}),
                     client.get("/docs"), client.get("/items/NOPE")):
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY" and response.headers["referrer-policy"] == "no-referrer"
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    policy = client.get("/").headers["content-security-policy"]
    script = re.search(r"<script>(.*?)</script>", PAGE, re.DOTALL).group(1)
    assert f"script-src 'sha256-{_sha256(script)}'" in policy and "unsafe-inline" not in policy
    assert "connect-src 'self'" in policy
    assert client.get("/health").headers["content-security-policy"].startswith("default-src 'none'")


def test_docs_and_redoc_load_their_scripts_from_this_server(client):
    for path, script in (("/docs", "swagger-ui-bundle.js"), ("/redoc", "redoc.standalone.js")):
        page = client.get(path)
        assert page.status_code == 200 and "cdn." not in page.text and "fonts.googleapis" not in page.text
        url = re.search(rf'src="([^"]*{re.escape(script)})"', page.text).group(1)
        asset = client.get(url)
        assert asset.status_code == 200 and len(asset.content) > 100_000
    assert client.get("/openapi.json").json()["paths"].keys() >= {"/recommend", "/items/{item}", "/users/{user}"}


def test_exclude_seen_is_the_default_and_never_returns_fewer_than_top_k(client, loaded):
    recommender, dataset = loaded
    body = client.post("/recommend", json={"user": "U3"}).json()
    ids = [row["item_id"] for row in body["recommendations"]]
    expected, _ = recommender.recommend([dataset.history(3)], 10, users=[3], beams=20, exclude_seen=True)
    assert ids == expected[0].tolist() and not set(ids) & set(dataset.history(3))
    # 20 distinct items seen, a model reading only the last 5: ten unseen items are still there to rank
    history = list(range(1, 21))
    items, scores = recommender.recommend([history], 10, exclude_seen=True)
    assert sorted(items[0].tolist()) == list(range(21, 31)) and np.isfinite(scores).all()
    body = client.post("/recommend", json={"history": history}).json()
    assert sorted(row["item_id"] for row in body["recommendations"]) == list(range(21, 31))


def test_serve_warns_off_loopback_and_checks_its_new_options(trained, capsys, monkeypatch):
    import socket

    import uvicorn

    from genrec.cli import main

    from genrec.core import allocator

    served, capped = [], []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: served.append((app, kwargs)))
    monkeypatch.setattr(allocator, "limit_malloc_arenas", lambda arenas=2: capped.append(arenas) or True)
    with socket.socket() as probe:
        probe.bind(("0.0.0.0", 0))
        port = probe.getsockname()[1]
    model = ["--dataset", str(trained / "data"), "--model", str(trained / "model")]
    assert main(["serve", *model, "--host", "0.0.0.0", "--port", str(port), "--max-queue", "3", "--timeout", "2"]) == 0
    assert "no authentication; anyone who can reach 0.0.0.0" in capsys.readouterr().out
    assert capped == [2]  # bounded resident memory: tests/test_allocator.py
    app = served[0][0]
    assert app.state.batcher.max_queue == 3
    for bad in (["--timeout", "0"], ["--max-queue", "0"]):
        assert main(["serve", *model, "--port", str(port), *bad]) == 2
        assert capsys.readouterr().err.count("\n") == 1

"""``genrec serve``: a trained recommender behind an HTTP JSON API (FastAPI), loaded once.

    POST /recommend      {"user": "42"} or {"history": ["B00X", "17", ...]}, "top_k" (1..100, default
                         10), "exclude_seen" (default false) -> user, history, recommendations
    GET  /items/{id}     item number or raw id -> item_id, raw_id, title, text, sid
    GET  /users/{id}     user number or raw id -> user_id, raw_id, history (with titles)
    GET  /health         status, catalogue size, batching figures
    GET  /               a small page: type a user id (or open /?user=ID), see history and picks

Concurrent /recommend requests are micro-batched: a worker thread takes the first waiting
request, collects more for up to ``max_wait_ms`` or until ``max_batch``, and runs one batched
``Recommender.recommend`` per group of requests that decode alike, so ten users cost about one
decoder pass instead of ten. A bad request (unknown user or item, empty history, top_k out of
range, malformed JSON) is a 4xx with ``{"detail": "message"}``, never a 500.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from concurrent.futures import Future
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

from genrec.core.errors import GenrecError
from genrec.pipeline import describe_history, describe_recommendations

log = logging.getLogger("genrec.serve")

from genrec.core.limits import MAX_TOP_K


class RecommendRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt field ("topk") is an error, not a silent default

    user: StrictStr | StrictInt | None = Field(None, description="dataset user number (1..N) or raw user id")
    history: list[StrictStr | StrictInt] | None = Field(None, description="item numbers or raw item ids, oldest first")
    top_k: int = Field(10, ge=1, le=MAX_TOP_K)
    exclude_seen: bool = False


@dataclass
class _Job:
    history: list[int]
    user: int
    top_k: int
    exclude_seen: bool
    future: Future = field(default_factory=Future)


class MicroBatcher:
    """Collects recommend jobs from many requests into batched ``Recommender.recommend`` calls.

    One daemon thread owns the model, so decoding never runs twice at once. Jobs are grouped so
    that a batched answer equals the single one: same ``top_k`` and ``exclude_seen``, and with
    ``exclude_seen`` the same widening (the recommender widens the beam by the batch's longest
    distinct history, capped at ``max_history``)."""

    def __init__(self, recommender, beams: int = 20, max_batch: int = 64, max_wait_ms: float = 5.0):
        if max_batch < 1 or max_wait_ms < 0:
            raise GenrecError("max_batch must be at least 1 and max_wait_ms at least 0")
        self.recommender = recommender
        self.beams = beams
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000
        self.jobs: queue.Queue[_Job | None] = queue.Queue()
        self.calls = 0  # batched recommend calls made
        self.requests = 0  # jobs answered
        self.largest_batch = 0
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="genrec-batcher", daemon=True)
                self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self.jobs.put(None)
            thread.join(timeout)

    async def recommend(self, history: list[int], user: int, top_k: int, exclude_seen: bool):
        """(item ids, scores) for one history, answered by the next batch."""
        self.start()
        job = _Job(history, user, top_k, exclude_seen)
        self.jobs.put(job)
        return await asyncio.wrap_future(job.future)

    def _group_key(self, job: _Job) -> tuple:
        widening = min(len(set(job.history)), self.recommender.config.max_history) if job.exclude_seen else 0
        return job.top_k, job.exclude_seen, widening

    def _run(self) -> None:
        while True:
            first = self.jobs.get()
            if first is None:
                return
            batch, deadline, stopping = [first], time.perf_counter() + self.max_wait, False
            while len(batch) < self.max_batch:
                try:
                    job = self.jobs.get(timeout=max(deadline - time.perf_counter(), 0))
                except queue.Empty:
                    break
                if job is None:
                    stopping = True
                    break
                batch.append(job)
            groups: dict[tuple, list[_Job]] = {}
            for job in batch:
                groups.setdefault(self._group_key(job), []).append(job)
            for group in groups.values():
                self._answer(group)
            if stopping:
                return

    def _answer(self, group: list[_Job]) -> None:
        try:
            self.calls += 1
            self.largest_batch = max(self.largest_batch, len(group))
            items, scores = self.recommender.recommend(
                [job.history for job in group], group[0].top_k, users=[job.user for job in group],
                beams=self.beams, exclude_seen=group[0].exclude_seen)
        except Exception as exc:  # noqa: BLE001 - each request gets its own answer or its own error
            if len(group) > 1:  # one bad job must not fail the others: answer them one by one
                for job in group:
                    self._answer([job])
                return
            group[0].future.set_exception(exc)
            return
        self.requests += len(group)
        for row, job in enumerate(group):
            job.future.set_result((items[row], scores[row]))


def _found(lookup, value) -> int:
    """``dataset.user_id_for`` / ``item_id_for``: an unknown id is a 404 with the lookup's message."""
    try:
        return lookup(value)
    except GenrecError as exc:
        raise HTTPException(404, str(exc)) from None


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for error in exc.errors():
        if error.get("type") == "json_invalid":
            at = error.get("loc", ("body", "?"))[-1]
            parts.append(f"malformed JSON body at character {at}: {error.get('ctx', {}).get('error', 'invalid')}")
            continue
        where = ".".join(str(part) for part in error.get("loc", ()) if part != "body") or "body"
        parts.append(f"{where}: {error.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


def create_app(recommender, dataset, beams: int = 20, max_batch: int = 64, max_wait_ms: float = 5.0) -> FastAPI:
    """The API over a loaded ``Recommender`` and the ``ProcessedDataset`` it was trained on."""
    if dataset.num_items != recommender.num_items:
        raise GenrecError(f"{dataset.path} has {dataset.num_items} items; the recommender was trained on "
                          f"{recommender.num_items}")
    batcher = MicroBatcher(recommender, beams=beams, max_batch=max_batch, max_wait_ms=max_wait_ms)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        batcher.start()
        yield
        batcher.stop()

    app = FastAPI(title="genrec", description="Generative recommendations over Semantic IDs", lifespan=lifespan)
    app.state.batcher = batcher
    app.state.recommender = recommender
    app.state.dataset = dataset

    @app.exception_handler(GenrecError)
    async def genrec_error(_request: Request, exc: GenrecError):
        return JSONResponse({"detail": str(exc)}, status_code=422)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, exc: RequestValidationError):
        return JSONResponse({"detail": _validation_message(exc)}, status_code=422)

    def sid(item: int) -> list[int]:
        return recommender.sids.codes_of([item])[0].tolist()

    @app.post("/recommend")
    async def recommend(request: RecommendRequest):
        if (request.user is None) == (request.history is None):
            raise HTTPException(422, "give exactly one of \"user\" (a user id) or \"history\" (a list of item ids)")
        if request.history is not None:
            if not request.history:
                raise HTTPException(422, "history is empty: give at least one item id")
            user, history = 0, [_found(dataset.item_id_for, item) for item in request.history]
        else:
            user = _found(dataset.user_id_for, request.user)
            history = dataset.history(user)
        items, scores = await batcher.recommend(history, user, request.top_k, request.exclude_seen)
        return {"user": user or None, "user_raw_id": dataset.user_raw_id(user) if user else None,
                "history": describe_history(dataset, history),
                "recommendations": describe_recommendations(dataset, recommender.sids, items, scores)}

    @app.get("/items/{item}")
    async def item(item: str):
        item_id = _found(dataset.item_id_for, item)
        return {"item_id": item_id, "raw_id": dataset.item_raw_id(item_id), "title": dataset.item_title(item_id),
                "text": dataset.item_text(item_id), "sid": sid(item_id)}

    @app.get("/users/{user}")
    async def user(user: str):
        user_id = _found(dataset.user_id_for, user)
        return {"user_id": user_id, "raw_id": dataset.user_raw_id(user_id),
                "history": describe_history(dataset, dataset.history(user_id))}

    @app.get("/health")
    async def health():
        return {"status": "ok", "num_users": dataset.num_users, "num_items": dataset.num_items,
                "model": str(recommender.path) if recommender.path else None, "beams": beams,
                "batching": {"max_batch": max_batch, "max_wait_ms": max_wait_ms, "calls": batcher.calls,
                             "requests": batcher.requests, "largest_batch": batcher.largest_batch}}

    @app.get("/", response_class=HTMLResponse)
    async def page():
        return PAGE

    return app


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>genrec</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
 body { font: 15px/1.4 system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
 form { display: flex; gap: .5rem; align-items: center; margin-bottom: 1rem; }
 input[type=text] { padding: .3rem .5rem; width: 14rem; }
 .cols { display: grid; grid-template-columns: 1fr 1fr; gap: 2rem; }
 ol { padding-left: 1.6rem; } li { margin: .2rem 0; }
 .id { color: #888; font-size: 85%; } .score { color: #888; font-size: 85%; float: right; }
 #error { color: #b00020; min-height: 1.4em; }
</style></head>
<body>
<h1>genrec</h1>
<form id="form">
 <label for="user">User</label> <input type="text" id="user" name="user" placeholder="number or raw id">
 <label><input type="checkbox" id="exclude"> hide seen items</label>
 <button type="submit">Recommend</button>
</form>
<div id="error"></div>
<div class="cols">
 <section><h2>History <span id="who" class="id"></span></h2><ol id="history"></ol></section>
 <section><h2>Recommendations</h2><ol id="recommendations"></ol></section>
</div>
<script>
function fill(list, rows, withScore) {
  list.replaceChildren();
  for (const row of rows) {
    const li = document.createElement("li");
    li.className = "item";
    li.append(row.title || "(no title)", " ");
    const id = document.createElement("span");
    id.className = "id"; id.textContent = row.raw_id;
    li.append(id);
    if (withScore) {
      const score = document.createElement("span");
      score.className = "score"; score.textContent = row.score.toFixed(3);
      li.append(score);
    }
    list.append(li);
  }
}
async function show(user) {
  const error = document.getElementById("error");
  error.textContent = "";
  try {
    const response = await fetch("/recommend", {method: "POST", headers: {"Content-Type": "application/json"},
      body: JSON.stringify({user: user, top_k: 10, exclude_seen: document.getElementById("exclude").checked})});
    const body = await response.json();
    if (!response.ok) throw new Error(body.detail || response.statusText);
    document.getElementById("who").textContent = "user " + body.user + " (" + body.user_raw_id + ")";
    fill(document.getElementById("history"), body.history, false);
    fill(document.getElementById("recommendations"), body.recommendations, true);
    history.replaceState(null, "", "?user=" + encodeURIComponent(user));
  } catch (e) {
    error.textContent = e.message;
  }
}
document.getElementById("form").addEventListener("submit", (event) => {
  event.preventDefault();
  const user = document.getElementById("user").value.trim();
  if (user) show(user);
});
const start = new URLSearchParams(location.search).get("user");
if (start) { document.getElementById("user").value = start; show(start); }
</script>
</body></html>
"""

"""``genrec serve``: a trained recommender behind an HTTP JSON API (FastAPI), loaded once.

    POST /recommend      {"user": "U42"} or {"history": ["B00X", 17, ...]}, "top_k" (1..100, default
                         10), "exclude_seen" (default true) -> user, history, recommendations
    GET  /items/{id}     item raw id or number -> item_id, raw_id, title, text, sid
    GET  /users/{id}     user raw id or number -> user_id, raw_id, history (with titles)
    GET  /health         status, catalogue size, batching and queue figures, reloads
    POST /admin/reload   load the model and dataset again (after `genrec add-items`) and swap them
                         in; SIGHUP to `genrec serve` does the same
    GET  /               a small page: type a user id (or open /?user=ID), see history and picks
    GET  /docs, /redoc   the OpenAPI documentation, its scripts served from here (no CDN)

Concurrent /recommend requests are micro-batched: a worker thread takes the first waiting
request, collects more for up to ``max_wait_ms`` or until ``max_batch``, and runs one batched
``Recommender.recommend`` per group of requests that decode alike, so ten users cost about one
decoder pass instead of ten. Every bad request (unknown id, over a limit of genrec.core.limits,
malformed JSON, a full queue, a timeout) is a 4xx or 503 with a one-line ``{"detail": "message"}``,
never a 500. docs/serving.md states the limits and the id rule.

A reload (``reload``) loads the new model and dataset beside the ones serving, then swaps them in
with one assignment: a request works with the pair it started with to the end (its job carries
its model into the batcher), so nothing in flight is dropped or mixed; a failed load changes
nothing and is reported.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import queue
import re
import threading
import time
from concurrent.futures import Future, InvalidStateError
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi_offline import FastAPIOffline
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr

from genrec.core.errors import GenrecError
from genrec.core.limits import (DEFAULT_BEAMS, DEFAULT_EXCLUDE_SEEN, DEFAULT_MAX_QUEUE, DEFAULT_TIMEOUT_S,
                                DEFAULT_TOP_K, MAX_BODY_BYTES, MAX_ECHOED_HISTORY, MAX_HISTORY, MAX_ID_LENGTH,
                                MAX_TOP_K)
from genrec.pipeline import describe_history, describe_recommendations
from genrec.pipeline.recommendations import RuledDecoders, ranked, reason_counts
from genrec.recommender.rules import ItemRule
from genrec.serve_page import PAGE

log = logging.getLogger("genrec.serve")

ID_RULE = ("A JSON integer is the dataset number (1..N). A string is the raw id it equals exactly; when no raw id "
           "equals it, ASCII digits \"17\" or \"#17\" name dataset number 17.")
Id = Annotated[StrictStr, Field(max_length=MAX_ID_LENGTH)] | StrictInt


class RecommendRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt field ("topk") is an error, not a silent default

    user: Id | None = Field(None, description=f"the user to recommend for. {ID_RULE}")
    history: list[Id] | None = Field(None, max_length=MAX_HISTORY,
                                     description=f"items of a user without an id, oldest first. {ID_RULE}")
    top_k: StrictInt = Field(DEFAULT_TOP_K, ge=1, le=MAX_TOP_K, description="how many items to recommend")
    exclude_seen: StrictBool = Field(DEFAULT_EXCLUDE_SEEN, description="never recommend an item of the history")
    rule: dict | None = Field(None, description='only the items this rule allows, kept inside the beam, e.g. '
                                                '{"where": {"category": "Skin Care"}} (docs/rules.md)')
    influence: StrictBool = Field(False, description="also each item's \"influence\": the history items without "
                                                     "which its score falls most (one extra scoring per history item)")


class QueueFull(Exception):
    """More jobs are waiting for the model than the batcher accepts."""


@dataclass
class _Job:
    history: list[int]
    user: int
    top_k: int
    exclude_seen: bool
    recommender: object = None  # the model the request resolved its ids against (a reload swaps the default)
    future: Future = field(default_factory=Future)


def _settle(future: Future, result=None, error: BaseException | None = None) -> None:
    """Give a job its answer unless it already has one: a future cancelled by its waiter (timeout,
    disconnect) raises InvalidStateError on set_result, which must never reach the batcher loop."""
    try:
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)
    except InvalidStateError:
        pass


class MicroBatcher:
    """Collects recommend jobs from many requests into batched ``Recommender.recommend`` calls.

    One daemon thread owns the model, so decoding never runs twice at once. Jobs are grouped so
    that a batched answer equals the single one: same model, ``top_k`` and ``exclude_seen`` (each
    user's beam is its own, so nothing else couples a batch's answers). At most ``max_queue`` jobs
    wait; a job whose waiter gave up before decoding starts is dropped unanswered."""

    def __init__(self, recommender, beams: int = DEFAULT_BEAMS, max_batch: int = 64, max_wait_ms: float = 5.0,
                 max_queue: int = DEFAULT_MAX_QUEUE):
        if max_batch < 1 or max_wait_ms < 0 or max_queue < 1:
            raise GenrecError("max_batch and max_queue must be at least 1 and max_wait_ms at least 0")
        self.recommender = recommender
        self.beams = beams
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000
        self.max_queue = max_queue
        self.jobs: queue.Queue[_Job | None] = queue.Queue()
        self.waiting = 0  # jobs queued and not yet taken for decoding
        self.calls = 0  # batched recommend calls made
        self.requests = 0  # jobs answered
        self.dropped = 0  # jobs given up by their waiter before decoding
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

    def submit(self, history: list[int], user: int, top_k: int, exclude_seen: bool, recommender=None) -> _Job:
        """Queue one job (QueueFull when ``max_queue`` already wait); its future gets (items, scores)
        from ``recommender`` (default: the batcher's)."""
        with self._lock:
            if self.waiting >= self.max_queue:
                raise QueueFull(f"{self.waiting} requests are already waiting for the model")
            self.waiting += 1
        job = _Job(history, user, top_k, exclude_seen, recommender or self.recommender)
        self.jobs.put(job)
        return job

    async def recommend(self, history: list[int], user: int, top_k: int, exclude_seen: bool,
                        timeout: float | None = None, recommender=None):
        """(item ids, scores) for one history, answered by the next batch; TimeoutError after
        ``timeout`` seconds, and then the job is dropped if its decoding has not started."""
        self.start()
        job = self.submit(history, user, top_k, exclude_seen, recommender)
        try:
            return await asyncio.wait_for(asyncio.wrap_future(job.future), timeout)
        finally:
            job.future.cancel()  # no-op once decoding started; otherwise the batcher skips it

    def _group_key(self, job: _Job) -> tuple:
        return id(job.recommender), job.top_k, job.exclude_seen

    def _run(self) -> None:
        stopping = False
        while not stopping:
            batch, stopping = self._collect()
            groups: dict[tuple, list[_Job]] = {}
            for job in batch:
                groups.setdefault(self._group_key(job), []).append(job)
            for group in groups.values():
                try:
                    self._answer(group)
                except Exception as exc:  # noqa: BLE001 - the loop must outlive any one batch
                    log.exception("batcher: a batch failed outside the model call")
                    for job in group:
                        _settle(job.future, error=exc)

    def _collect(self) -> tuple[list[_Job], bool]:
        """The next batch: the first live job, then more for up to ``max_wait`` or ``max_batch``;
        True as well once the stop mark was read. Jobs cancelled while queued are dropped here
        (``set_running_or_notify_cancel``), and the rest can no longer be cancelled."""
        batch: list[_Job] = []
        deadline = 0.0
        while len(batch) < self.max_batch:
            try:
                job = self.jobs.get(timeout=max(deadline - time.perf_counter(), 0) if batch else None)
            except queue.Empty:
                break
            if job is None:
                return batch, True
            with self._lock:
                self.waiting -= 1
            if not job.future.set_running_or_notify_cancel():
                self.dropped += 1
                continue
            if not batch:
                deadline = time.perf_counter() + self.max_wait
            batch.append(job)
        return batch, False

    def _answer(self, group: list[_Job]) -> None:
        try:
            self.calls += 1
            self.largest_batch = max(self.largest_batch, len(group))
            items, scores = group[0].recommender.recommend(
                [job.history for job in group], group[0].top_k, users=[job.user for job in group],
                beams=self.beams, exclude_seen=group[0].exclude_seen)
        except Exception as exc:  # noqa: BLE001 - each request gets its own answer or its own error
            if len(group) > 1:  # one bad job must not fail the others: answer them one by one
                for job in group:
                    self._answer([job])
                return
            _settle(group[0].future, error=exc)
            return
        self.requests += len(group)
        for row, job in enumerate(group):
            _settle(job.future, (items[row], scores[row]))


def _found(lookup, value) -> int:
    """``dataset.user_id_for`` / ``item_id_for``: an unknown id is a 404 with the lookup's message."""
    try:
        return lookup(value)
    except GenrecError as exc:
        raise HTTPException(404, str(exc)) from None


def _one_line(text: str, limit: int = 500) -> str:
    """``text`` safe to put in a JSON answer: lone surrogates escaped, one line, at most ``limit`` characters."""
    text = text.encode("utf-8", "backslashreplace").decode("utf-8").replace("\n", " ")
    return text if len(text) <= limit else text[:limit] + "..."


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for error in exc.errors():
        if error.get("type") == "json_invalid":
            at = error.get("loc", ("body", "?"))[-1]
            parts.append(f"malformed JSON body at character {at}: {error.get('ctx', {}).get('error', 'invalid')}")
            continue
        loc = [str(part) for part in error.get("loc", ()) if part != "body"]
        if len(loc) > 1 and loc[-1] in ("constrained-str", "int"):  # which branch of "string or integer" failed
            loc.pop()
        parts.append(f"{'.'.join(loc) or 'body'}: {error.get('msg', 'invalid')}")
    return _one_line("; ".join(dict.fromkeys(parts)) or "invalid request")


def _echoed(dataset, history: list[int]) -> list[dict]:
    """The most recent MAX_ECHOED_HISTORY history items, described (an answer never grows with the history)."""
    return describe_history(dataset, history[-MAX_ECHOED_HISTORY:])


def _inline_hashes(page: str, tag: str) -> str:
    """CSP source list allowing exactly the inline <tag> blocks of ``page`` (by SHA-256)."""
    blocks = re.findall(rf"<{tag}>(.*?)</{tag}>", page, flags=re.DOTALL)
    return " ".join(f"'sha256-{base64.b64encode(hashlib.sha256(b.encode()).digest()).decode()}'" for b in blocks)


def _policies(page: str) -> dict[str, str]:
    """Content-Security-Policy by path: the page runs only its own inline script and style; the docs
    pages run Swagger UI / ReDoc from this server; JSON answers need nothing."""
    docs = ("default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
            "img-src 'self' data:; worker-src 'self' blob:; frame-ancestors 'none'")
    return {"/": (f"default-src 'none'; script-src {_inline_hashes(page, 'script')}; style-src "
                  f"{_inline_hashes(page, 'style')}; connect-src 'self'; img-src 'self'; form-action 'self'; "
                  "base-uri 'none'; frame-ancestors 'none'"),
            "/docs": docs, "/redoc": docs, "": "default-src 'none'; frame-ancestors 'none'"}


class GuardMiddleware:
    """Pure ASGI middleware around the whole API: refuses bodies over ``max_body`` bytes (413, by
    Content-Length before reading, else by counting while streaming), answers HEAD like GET without
    the body, and adds security headers to every answer."""

    def __init__(self, app, policies: dict[str, str], max_body: int = MAX_BODY_BYTES):
        self.app, self.policies, self.max_body = app, policies, max_body

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        head = scope["method"] == "HEAD"
        if head:
            scope = {**scope, "method": "GET"}
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length", b"0")
        if not declared.isdigit() or int(declared) > self.max_body:
            status, detail = (413, f"request body over {self.max_body:,} bytes") if declared.isdigit() else \
                (400, "Content-Length is not a number")
            return await JSONResponse({"detail": detail}, status)(scope, receive, self._sender(scope, send, head))
        await self.app(scope, self._counting(receive), self._sender(scope, send, head))

    def _counting(self, receive):
        """``receive`` that raises 413 once the streamed body passes ``max_body`` bytes (chunked uploads)."""
        seen = 0

        async def counted():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_body:
                raise HTTPException(413, f"request body over {self.max_body:,} bytes")
            return message
        return counted

    def _sender(self, scope, send, head: bool):
        """``send`` adding the security headers, and dropping the body of a HEAD answer."""
        path = scope.get("path", "")
        policy = self.policies.get(path, self.policies[""])

        async def guarded(message):
            if message["type"] == "http.response.start":
                extra = [(b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY"),
                         (b"referrer-policy", b"no-referrer"), (b"content-security-policy", policy.encode())]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            elif message["type"] == "http.response.body" and head:
                message = {**message, "body": b""}
            await send(message)
        return guarded


def _check_pair(recommender, dataset) -> None:
    if dataset.num_items != recommender.num_items:
        raise GenrecError(f"{dataset.path} has {dataset.num_items} items; the recommender was trained on "
                          f"{recommender.num_items}")


def _resolve(dataset, request: RecommendRequest) -> tuple[int, list[int]]:
    """(user, history) a request names; runs in a worker thread, as a long history takes a while."""
    if (request.user is None) == (request.history is None):
        raise HTTPException(422, "give exactly one of \"user\" (a user id) or \"history\" (a list of item ids)")
    if request.history is not None:
        if not request.history:
            raise HTTPException(422, "history is empty: give at least one item id")
        return 0, [_found(dataset.item_id_for, item) for item in request.history]
    user = _found(dataset.user_id_for, request.user)
    return user, dataset.history(user)


def _capped(recommender, dataset, rule: ItemRule, history: list[int], user: int, request: RecommendRequest,
            beams: int) -> dict:
    """The answer to a request whose rule caps a field's values (``max_per``): decoded on its own."""
    items, scores = ranked(recommender, dataset, rule, [history], [user], request.top_k, beams, request.exclude_seen)
    return _answer(recommender, dataset, user, history, items[0], scores[0], request.influence)


def _answer(recommender, dataset, user: int, history: list[int], items, scores, influence: bool = False) -> dict:
    return {"user": user or None, "user_raw_id": dataset.user_raw_id(user) if user else None,
            "history": _echoed(dataset, history), "history_length": len(history),
            "recommendations": describe_recommendations(dataset, recommender, items, scores, history,
                                                        influence_of=user if influence else None)}


class Reloader:
    """Loads the model and dataset again (``load`` -> (recommender, dataset)) and swaps them into
    the app and its batcher, one reload at a time; a failed reload keeps the pair that serves."""

    def __init__(self, app, batcher: MicroBatcher, load):
        self.app, self.batcher, self.load = app, batcher, load
        self.counts = {"count": 0, "last_error": None}
        self.lock = threading.Lock()

    def reload(self) -> dict:
        with self.lock:
            try:
                pair = self.load()
                _check_pair(*pair)
                reason_counts(*pair)
            except Exception as exc:  # noqa: BLE001 - a failed reload keeps the pair that serves
                self.counts["last_error"] = _one_line(f"{type(exc).__name__}: {exc}")
                raise
            self.app.state.current = pair
            self.batcher.recommender = pair[0]
            self.counts["count"] += 1
            self.counts["last_error"] = None
            return {"status": "reloaded", "num_items": pair[1].num_items, "num_users": pair[1].num_users,
                    "reloads": self.counts["count"]}


def _add_lookup_routes(app) -> None:
    """GET /items/{id}, /users/{id} and the page at /, read from ``app.state.current``."""

    @app.get("/items/{item}")
    def item(item: str):
        recommender, dataset = app.state.current
        item_id = _found(dataset.item_id_for, item)
        return {"item_id": item_id, "raw_id": dataset.item_raw_id(item_id), "title": dataset.item_title(item_id),
                "text": dataset.item_text(item_id), "sid": recommender.semantic_id(item_id)}

    @app.get("/users/{user}")
    def user(user: str):
        dataset = app.state.current[1]
        user_id = _found(dataset.user_id_for, user)
        history = dataset.history(user_id)
        return {"user_id": user_id, "raw_id": dataset.user_raw_id(user_id), "history": _echoed(dataset, history),
                "history_length": len(history)}

    @app.get("/", response_class=HTMLResponse)
    async def page():
        return PAGE


def create_app(recommender, dataset, beams: int = DEFAULT_BEAMS, max_batch: int = 64, max_wait_ms: float = 5.0,
               max_queue: int = DEFAULT_MAX_QUEUE, timeout_s: float = DEFAULT_TIMEOUT_S,
               max_body: int = MAX_BODY_BYTES, reload=None):
    """The API over a loaded ``Recommender`` and the ``ProcessedDataset`` it was trained on.
    ``reload``: a function that loads them again (-> (recommender, dataset)); with it POST
    /admin/reload and ``app.state.reload()`` swap the new pair in (without it the endpoint is 404)."""
    _check_pair(recommender, dataset)
    reason_counts(recommender, dataset)  # fitted now, when the policy has no prior, not on the first request
    if timeout_s <= 0:
        raise GenrecError("the request timeout must be above 0 seconds")
    batcher = MicroBatcher(recommender, beams=beams, max_batch=max_batch, max_wait_ms=max_wait_ms, max_queue=max_queue)
    timeouts = {"count": 0}

    @asynccontextmanager
    async def lifespan(_app):
        batcher.start()
        yield
        batcher.stop()

    app = FastAPIOffline(title="genrec", description="Generative recommendations over Semantic IDs", lifespan=lifespan)
    app.add_middleware(GuardMiddleware, policies=_policies(PAGE), max_body=max_body)
    app.state.batcher = batcher
    app.state.current = (recommender, dataset)  # replaced whole by a reload; a request reads it once
    reloader = Reloader(app, batcher, reload)
    reloads, reload_now = reloader.counts, reloader.reload
    app.state.reload = reload_now

    @app.exception_handler(GenrecError)
    async def genrec_error(_request: Request, exc: GenrecError):
        return JSONResponse({"detail": _one_line(str(exc))}, status_code=422)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, exc: RequestValidationError):
        return JSONResponse({"detail": _validation_message(exc)}, status_code=422)

    ruled = RuledDecoders()

    @app.post("/recommend")
    async def recommend(request: RecommendRequest):
        recommender, dataset = app.state.current  # this pair to the end, whatever a reload does meanwhile
        user, history = await run_in_threadpool(_resolve, dataset, request)
        rule = ItemRule.parse(request.rule) if request.rule is not None else None
        if rule is not None:  # one decoder per rule: requests with the same rule are batched together
            recommender = await run_in_threadpool(ruled.get, recommender, dataset, rule)
        if rule is not None and rule.max_per is not None:  # capped lists: decoded alone, greedily
            return await run_in_threadpool(_capped, recommender, dataset, rule, history, user, request, batcher.beams)
        try:
            items, scores = await batcher.recommend(history, user, request.top_k, request.exclude_seen, timeout_s,
                                                    recommender)
        except QueueFull as exc:
            raise HTTPException(503, f"server busy: {exc}; retry shortly", headers={"Retry-After": "1"}) from None
        except (TimeoutError, asyncio.TimeoutError):  # one class from Python 3.11 on
            timeouts["count"] += 1
            raise HTTPException(503, f"no answer within {timeout_s:g} s (server busy); the request was dropped, "
                                "retry shortly", headers={"Retry-After": "1"}) from None
        return await run_in_threadpool(_answer, recommender, dataset, user, history, items, scores, request.influence)

    _add_lookup_routes(app)

    @app.get("/health")
    async def health():
        recommender, dataset = app.state.current
        return {"status": "ok", "reloads": dict(reloads), "num_users": dataset.num_users, "num_items": dataset.num_items,
                "model": str(recommender.path) if recommender.path else None, "beams": beams,
                "batching": {"max_batch": max_batch, "max_wait_ms": max_wait_ms, "calls": batcher.calls,
                             "requests": batcher.requests, "largest_batch": batcher.largest_batch},
                "queue": {"waiting": batcher.waiting, "max_queue": max_queue, "dropped": batcher.dropped,
                          "timeouts": timeouts["count"], "timeout_s": timeout_s}}

    @app.post("/admin/reload")
    async def admin_reload():
        if reload is None:
            raise HTTPException(404, "this server was started without a way to reload its model")
        try:
            return await run_in_threadpool(reload_now)
        except Exception:  # noqa: BLE001 - reported in one line; the previous model keeps serving
            raise HTTPException(503, f"reload failed, still serving the previous model: {reloads['last_error']}") \
                from None

    return app

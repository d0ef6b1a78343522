"""A soak of ``genrec serve`` on loopback: many clients for minutes, with cancelled requests mixed in.

    python -m bench.serve_soak --dataset DIR [--model DIR] --out DIR [--clients 32] [--minutes 10]

Starts ``genrec serve`` as a subprocess on a free 127.0.0.1 port (as bench.serve_load does) and
builds a pool of ``--inputs`` requests (users by dataset number and histories by raw id, top_k 5 or
10, exclude_seen on or off). Each input is first asked alone, one at a time: that answer is the
reference. Then ``--clients`` threads send random inputs for ``--minutes``, each on its own
keep-alive connection; a ``--cancel-share`` of the requests is abandoned part way (the client
gives up after a few milliseconds, or closes the socket after half the body). Every completed
answer must equal its reference (same items, scores within 1e-3); a request with no answer, a
non-200 or a different answer is counted as lost, an error or a mismatch. A ``--fresh-share`` of
the requests sends a history drawn anew instead (lengths from ``--history-lengths``), checked for
a full answer only, so that memory held per distinct input would show. Reported: p50/p99 and the
server's RSS per time window, and the server's queue figures.
Writes OUT/serve_soak.json, OUT/serve_soak.md and OUT/serve_soak.png (memory and latency curves).
"""

from __future__ import annotations

import http.client
import json
import os
import random
import socket
import threading
import time
from pathlib import Path

import numpy as np

from bench.common import markdown_table, run_script, script_parser, stop_process, write_report
from bench.serve_load import HOST, free_port, get_json, start_server
from genrec.core.hardware import hardware, hardware_line

ANSWER_TIMEOUT_S = 60.0  # a request unanswered this long is lost


def server_rss_mb(pid: int) -> float:
    """Resident memory of process ``pid`` in MB (Linux /proc)."""
    with open(f"/proc/{pid}/status") as handle:
        return next(int(line.split()[1]) / 1024 for line in handle if line.startswith("VmRSS:"))


def input_pool(dataset_dir: str, count: int, seed: int, history_lengths: tuple[int, int] = (1, 30)) -> list[dict]:
    """``count`` request bodies: users (JSON numbers) and histories of raw item ids (their lengths drawn
    from ``history_lengths``, inclusive), varied options."""
    from genrec.data_prep.dataset import load_processed_dataset

    dataset = load_processed_dataset(dataset_dir)
    rng = random.Random(seed)
    pool = []
    for index in range(count):
        options = {"top_k": rng.choice((5, 10)), "exclude_seen": rng.random() < 0.5}
        if index % 2 == 0:
            pool.append({"user": rng.randint(1, dataset.num_users), **options})
        else:
            low, high = (min(bound, dataset.num_items) for bound in history_lengths)
            items = rng.sample(range(1, dataset.num_items + 1), rng.randint(low, high))
            pool.append({"history": [dataset.item_raw_id(item) for item in items], **options})
    return pool


def post(connection: http.client.HTTPConnection, body: dict) -> tuple[int, dict]:
    connection.request("POST", "/recommend", json.dumps(body), {"Content-Type": "application/json"})
    response = connection.getresponse()
    return response.status, json.loads(response.read())


def picks(answer: dict) -> tuple[list[int], list[float]]:
    return [row["item_id"] for row in answer["recommendations"]], [row["score"] for row in answer["recommendations"]]


def same_answer(answer: dict, reference: dict) -> bool:
    """Same items in the same order and scores within 1e-3 (a batch may round differently)."""
    (items, scores), (want_items, want_scores) = picks(answer), picks(reference)
    return items == want_items and np.allclose(scores, want_scores, rtol=1e-3, atol=1e-3)


def cancel_one(port: int, body: dict, rng: random.Random) -> None:
    """Abandon a request part way: give up after a few ms, or close after sending half the body."""
    payload = json.dumps(body).encode()
    with socket.create_connection((HOST, port), timeout=5) as sock:
        head = (f"POST /recommend HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(payload)}\r\n\r\n").encode()
        if rng.random() < 0.5:
            sock.sendall(head + payload[: len(payload) // 2])
            return
        sock.sendall(head + payload)
        sock.settimeout(rng.uniform(0.001, 0.03))
        try:
            sock.recv(1)
        except OSError:  # the timeout: the client gives up
            pass


class FreshHistories:
    """Histories drawn anew for each request (a ``share`` of them), so that nothing keyed by the
    input can plateau the server's memory the way 200 repeated inputs would."""

    def __init__(self, raw_ids: list[str], lengths: tuple[int, int], share: float):
        self.raw_ids, self.lengths, self.share = raw_ids, lengths, share

    def expected(self, body: dict) -> int:
        """How many items a full answer has: top_k, fewer only when the history leaves fewer unseen."""
        unseen = len(self.raw_ids) - (len(body["history"]) if body["exclude_seen"] else 0)
        return min(body["top_k"], unseen)

    def draw(self, rng: random.Random) -> dict:
        low, high = (min(bound, len(self.raw_ids)) for bound in self.lengths)
        return {"history": rng.sample(self.raw_ids, rng.randint(low, high)), "top_k": rng.choice((5, 10)),
                "exclude_seen": rng.random() < 0.5}


class Soak:
    """The shared state of one soak: references, counters and (time, latency) samples."""

    def __init__(self, port: int, pool: list[dict], references: list[dict], cancel_share: float,
                 fresh: "FreshHistories | None" = None):
        self.port, self.pool, self.references, self.cancel_share = port, pool, references, cancel_share
        self.fresh = fresh
        self.lock = threading.Lock()
        self.samples: list[tuple[float, float]] = []  # (seconds since start, latency s)
        self.counts = {"answered": 0, "cancelled": 0, "errors": 0, "lost": 0, "mismatched": 0, "fresh": 0}
        self.examples: list[str] = []

    def count(self, key: str, example: str | None = None) -> None:
        with self.lock:
            self.counts[key] += 1
            if example and len(self.examples) < 10:
                self.examples.append(example)

    def client(self, seed: int, started: float, until: float) -> None:
        """One client: random inputs until ``until``; a fresh connection after any failure."""
        rng = random.Random(seed)
        connection = http.client.HTTPConnection(HOST, self.port, timeout=ANSWER_TIMEOUT_S)
        while time.perf_counter() < until:
            index = rng.randrange(len(self.pool))
            body, fresh = self.pool[index], self.fresh is not None and rng.random() < self.fresh.share
            if fresh:  # a history never sent before: no reference, so only a full, valid answer is checked
                body = self.fresh.draw(rng)
            if rng.random() < self.cancel_share:
                cancel_one(self.port, body, rng)
                self.count("cancelled")
                continue
            sent = time.perf_counter()
            try:
                status, answer = post(connection, body)
            except (socket.timeout, TimeoutError):
                self.count("lost", f"input {index}: no answer within {ANSWER_TIMEOUT_S:g} s")
                connection.close()
                connection = http.client.HTTPConnection(HOST, self.port, timeout=ANSWER_TIMEOUT_S)
                continue
            except (OSError, http.client.HTTPException, ValueError) as exc:
                self.count("errors", f"input {index}: {type(exc).__name__}: {exc}")
                connection.close()
                connection = http.client.HTTPConnection(HOST, self.port, timeout=ANSWER_TIMEOUT_S)
                continue
            latency = time.perf_counter() - sent
            if status != 200:
                self.count("errors", f"input {index}: HTTP {status} {str(answer)[:200]}")
            elif fresh and len(answer["recommendations"]) != self.fresh.expected(body):
                self.count("errors", f"a fresh history got {len(answer['recommendations'])} of "
                                     f"{self.fresh.expected(body)} items")
            elif fresh:
                with self.lock:
                    self.counts["answered"] += 1
                    self.counts["fresh"] += 1
                    self.samples.append((sent - started, latency))
            elif not same_answer(answer, self.references[index]):
                self.count("mismatched", f"input {index}: {picks(answer)[0]} != {picks(self.references[index])[0]}")
            else:
                with self.lock:
                    self.counts["answered"] += 1
                    self.samples.append((sent - started, latency))
        connection.close()


def windows(samples: list[tuple[float, float]], seconds: float, window: float) -> list[dict]:
    """Requests, p50 and p99 (ms) per ``window`` seconds of the soak."""
    rows = []
    for start in np.arange(0, seconds, window):
        ms = np.asarray([latency for at, latency in samples if start <= at < start + window]) * 1000
        rows.append({"from_s": round(float(start), 1), "requests": int(len(ms)),
                     "p50_ms": round(float(np.percentile(ms, 50)), 1) if len(ms) else None,
                     "p99_ms": round(float(np.percentile(ms, 99)), 1) if len(ms) else None})
    return rows


def rss_per_window(rows: list[dict], rss: list[tuple[float, float]], window: float) -> list[dict]:
    """``rows`` with the server's largest RSS (MB) sampled in each window (None where none was sampled)."""
    for row in rows:
        inside = [mb for at, mb in rss if row["from_s"] <= at < row["from_s"] + window]
        row["rss_mb"] = max(inside) if inside else None
    return rows


def sample_rss(pid: int, stop: threading.Event, every: float, started: float, out: list) -> None:
    """Append (seconds since ``started``, server RSS MB) every ``every`` seconds until ``stop``."""
    while not stop.wait(every):
        try:
            out.append((round(time.perf_counter() - started, 1), round(server_rss_mb(pid), 1)))
        except OSError:
            return


def soak(args, port: int, server_pid: int) -> dict:
    """References first (one at a time), then the timed soak; the figures of the report."""
    pool = input_pool(args.dataset, args.inputs, args.seed, args.history_lengths)
    connection = http.client.HTTPConnection(HOST, port, timeout=ANSWER_TIMEOUT_S)
    references = []
    for body in pool:
        status, answer = post(connection, body)
        if status != 200:
            raise SystemExit(f"reference request {body} failed: HTTP {status} {answer}")
        references.append(answer)
    connection.close()
    fresh = None
    if args.fresh_share > 0:
        from genrec.data_prep.dataset import load_processed_dataset

        dataset = load_processed_dataset(args.dataset)
        raw_ids = [dataset.item_raw_id(item) for item in range(1, dataset.num_items + 1)]
        fresh = FreshHistories(raw_ids, args.history_lengths, args.fresh_share)
    state = Soak(port, pool, references, args.cancel_share, fresh)
    seconds = args.minutes * 60
    rss, stop = [(0.0, round(server_rss_mb(server_pid), 1))], threading.Event()
    started = time.perf_counter()
    sampler = threading.Thread(target=sample_rss, args=(server_pid, stop, max(seconds / 60, 0.5), started, rss),
                               daemon=True)
    sampler.start()
    threads = [threading.Thread(target=state.client, args=(args.seed + 1 + n, started, started + seconds))
               for n in range(args.clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    stop.set()
    sampler.join()
    rss.append((round(elapsed, 1), round(server_rss_mb(server_pid), 1)))
    window = args.window or max(seconds / 20, 1.0)
    ms = np.asarray([latency for _, latency in state.samples]) * 1000
    return {**state.counts, "seconds": round(elapsed, 1), "examples": state.examples,
            "requests_per_second": round(state.counts["answered"] / elapsed, 1),
            "p50_ms": round(float(np.percentile(ms, 50)), 1) if len(ms) else None,
            "p99_ms": round(float(np.percentile(ms, 99)), 1) if len(ms) else None,
            "windows": rss_per_window(windows(state.samples, seconds, window), rss, window),
            "rss_mb": {"start": rss[0][1], "end": rss[-1][1], "max": max(mb for _, mb in rss),
                       "samples": [[at, mb] for at, mb in rss]},
            "server_queue": get_json(port, "/health")["queue"]}


def markdown(report: dict) -> str:
    result, settings = report["result"], report["settings"]
    rows = [[w["from_s"], w["requests"], w["p50_ms"], w["p99_ms"], w.get("rss_mb")] for w in result["windows"]]
    return "\n".join([
        "# genrec serve: soak", "", f"`{report['command']}`", "", f"Hardware: {report['hardware_line']}", "",
        f"Model: {report['server']['model']} ({report['server']['num_users']:,} users, "
        f"{report['server']['num_items']:,} items), beam {report['server']['beams']}; {settings['clients']} clients "
        f"for {settings['minutes']:g} min on loopback, {settings['inputs']} distinct inputs (histories of "
        f"{settings['history_lengths'][0]}-{settings['history_lengths'][1]} items), "
        f"{settings['cancel_share']:.0%} of requests abandoned part way; server torch threads "
        f"{settings['server_omp_threads']}.", "",
        f"Answered {result['answered']:,} ({result['requests_per_second']} req/s; {result['fresh']:,} of them "
        f"histories drawn anew), cancelled {result['cancelled']:,}, "
        f"lost {result['lost']}, errors {result['errors']}, mismatched {result['mismatched']}; "
        f"p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms; server RSS {result['rss_mb']['start']} MB at the "
        f"start, {result['rss_mb']['end']} MB at the end (max {result['rss_mb']['max']}); server queue at the end "
        f"{json.dumps(result['server_queue'])}.", "",
        *markdown_table(["from s", "answered", "p50 ms", "p99 ms", "server RSS MB (max)"], rows), ""])


def plot_rss(report: dict, path: Path) -> None:
    """The server's resident memory and p99 latency over the soak: does memory settle?"""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    result = report["result"]
    samples = np.asarray(result["rss_mb"]["samples"], dtype=float)
    fig, (memory, latency) = plt.subplots(1, 2, figsize=(10, 3.6))
    memory.plot(samples[:, 0], samples[:, 1], marker=".")
    memory.set(xlabel="seconds into the soak", ylabel="server RSS (MB)", title="resident memory")
    rows = [w for w in result["windows"] if w["p99_ms"] is not None]
    latency.plot([w["from_s"] for w in rows], [w["p99_ms"] for w in rows], marker="o", label="p99")
    latency.plot([w["from_s"] for w in rows], [w["p50_ms"] for w in rows], marker="o", label="p50")
    latency.set(xlabel="seconds into the soak", ylabel="ms", title="latency per window")
    latency.legend()
    for axis in (memory, latency):
        axis.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def run(args, command: str) -> int:
    port = free_port()
    server = start_server(args, port)
    try:
        health = get_json(port, "/health")
        result = soak(args, port, server.pid)
    finally:
        stop_process(server)
    info = hardware()
    report = {"command": command, "hardware": info, "hardware_line": hardware_line(info),
              "server": {key: health[key] for key in ("num_users", "num_items", "model", "beams")},
              "settings": {"clients": args.clients, "minutes": args.minutes, "inputs": args.inputs,
                           "cancel_share": args.cancel_share, "fresh_share": args.fresh_share, "history_lengths": list(args.history_lengths), "max_batch": args.max_batch,
                           "max_wait_ms": args.max_wait_ms, "server_omp_threads": os.environ.get("OMP_NUM_THREADS")},
              "result": result}
    write_report(Path(args.out), "serve_soak", report, markdown(report))
    plot_rss(report, Path(args.out) / "serve_soak.png")
    return 0 if result["lost"] == result["errors"] == result["mismatched"] == 0 else 1


def history_lengths(text: str) -> tuple[int, int]:
    """``LOW-HIGH`` (or one number) as a (low, high) pair of positive lengths."""
    import argparse

    try:
        low, _, high = text.partition("-")
        bounds = (int(low), int(high or low))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LOW-HIGH, e.g. 200-1000, got {text!r}") from None
    if not 1 <= bounds[0] <= bounds[1]:
        raise argparse.ArgumentTypeError(f"expected 1 <= LOW <= HIGH, got {text!r}")
    return bounds


def main(argv: list[str] | None = None) -> int:
    parser = script_parser("bench.serve_soak", __doc__)
    parser.add_argument("--dataset", required=True, help="prepared dataset directory")
    parser.add_argument("--model", help="recommender directory (default DATASET/recommender)")
    parser.add_argument("--out", required=True, help="report directory")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--inputs", type=int, default=200, help="distinct request bodies")
    parser.add_argument("--history-lengths", type=history_lengths, default=(1, 30), metavar="LOW-HIGH",
                        help="lengths of the history inputs, inclusive (default 1-30; serve accepts up to 1000)")
    parser.add_argument("--fresh-share", type=float, default=0.0,
                        help="share of requests sending a history drawn anew (checked for a full answer only)")
    parser.add_argument("--cancel-share", type=float, default=0.1, help="share of requests abandoned part way")
    parser.add_argument("--window", type=float, help="seconds per p50/p99 row (default a twentieth of the soak)")
    parser.add_argument("--beams", type=int, default=20)
    parser.add_argument("--max-batch", type=int, default=64)
    parser.add_argument("--max-wait-ms", type=float, default=5.0)
    parser.add_argument("--start-timeout", type=float, default=300.0, help="seconds to wait for the server")
    parser.add_argument("--seed", type=int, default=0)
    return run_script("bench.serve_soak", parser, run, argv)


if __name__ == "__main__":
    raise SystemExit(main())

"""A bounded load test of ``genrec serve``: requests/s and p50/p99 latency at 1, 8 and 32 clients.

    python -m bench.serve_load --dataset DIR [--model DIR] --out DIR [--requests 200] [--levels 1,8,32]

Starts ``genrec serve`` as a subprocess on a free loopback port (127.0.0.1 only), waits for
``/health``, then for each level sends at most ``--requests`` POST /recommend requests (random
users, ``--top-k``) from that many client threads, each with its own keep-alive http.client
connection, stopping a level early after ``--time-limit`` seconds. The server stops with the run.
Writes OUT/serve_load.json and OUT/serve_load.md. Latency is per request as a client sees it
(connection reuse included, server start excluded); the server's batching figures come from
``/health`` after each level.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

from bench.common import command_line, markdown_table, stop_process, write_report
from genrec.core.hardware import hardware, hardware_line

HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def get_json(port: int, path: str) -> dict:
    connection = http.client.HTTPConnection(HOST, port, timeout=10)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return json.loads(response.read())
    finally:
        connection.close()


def start_server(args, port: int) -> subprocess.Popen:
    command = [sys.executable, "-m", "genrec.cli", "serve", "--dataset", str(args.dataset), "--host", HOST,
               "--port", str(port), "--log-level", "warning", "--max-batch", str(args.max_batch),
               "--max-wait-ms", str(args.max_wait_ms), "--beams", str(args.beams)]
    if args.model:
        command += ["--model", str(args.model)]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + args.start_timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"genrec serve exited with {server.returncode}:\n{server.stdout.read()}")
        try:
            get_json(port, "/health")
            return server
        except OSError:
            time.sleep(0.2)
    server.kill()
    raise SystemExit(f"genrec serve did not answer within {args.start_timeout} s")


def run_level(port: int, clients: int, requests: int, time_limit: float, top_k: int, num_users: int,
              seed: int, rule: dict | None = None) -> dict:
    """``requests`` POST /recommend (fewer if ``time_limit`` runs out) from ``clients`` threads."""
    users = np.random.default_rng(seed).integers(1, num_users + 1, size=requests).tolist()
    latencies: list[float] = []
    errors = [0]
    lock, next_index = threading.Lock(), [0]
    deadline = time.perf_counter() + time_limit

    def client() -> None:
        connection = http.client.HTTPConnection(HOST, port, timeout=60)
        try:
            while time.perf_counter() < deadline:
                with lock:
                    index = next_index[0]
                    if index >= requests:
                        return
                    next_index[0] += 1
                body = json.dumps({"user": users[index], "top_k": top_k,  # a JSON number: the dataset number
                                   **({"rule": rule} if rule is not None else {})})
                started = time.perf_counter()
                try:
                    connection.request("POST", "/recommend", body, {"Content-Type": "application/json"})
                    response = connection.getresponse()
                    response.read()
                    ok = response.status == 200
                except (OSError, http.client.HTTPException):
                    ok = False
                    connection.close()
                    connection = http.client.HTTPConnection(HOST, port, timeout=60)
                elapsed = time.perf_counter() - started
                with lock:
                    if ok:
                        latencies.append(elapsed)
                    else:
                        errors[0] += 1
        finally:
            connection.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    ms = np.asarray(latencies) * 1000
    return {"clients": clients, "requests": len(latencies), "errors": errors[0], "seconds": round(seconds, 3),
            "requests_per_second": round(len(latencies) / seconds, 1) if seconds else 0.0,
            "p50_ms": round(float(np.percentile(ms, 50)), 1) if len(ms) else None,
            "p99_ms": round(float(np.percentile(ms, 99)), 1) if len(ms) else None,
            "stopped_by_time_limit": len(latencies) + errors[0] < requests}


def run_levels(args, port: int, levels: list[int], num_users: int, rule: dict | None) -> list[dict]:
    """A warm-up, then each level in turn (every request carrying ``rule``), with the server's batching."""
    run_level(port, 1, args.warmup, args.time_limit, args.top_k, num_users, args.seed + 999, rule)
    results = []
    for number, clients in enumerate(levels):
        before = get_json(port, "/health")["batching"]
        result = run_level(port, clients, args.requests, args.time_limit, args.top_k, num_users, args.seed + number,
                           rule)
        after = get_json(port, "/health")["batching"]
        calls = after["calls"] - before["calls"]
        result.update(recommend_calls=calls, rule=rule is not None,
                      mean_batch=round((after["requests"] - before["requests"]) / calls, 2) if calls else None)
        results.append(result)
        print(f"{clients:>3} clients{' (rule)' if rule else ''}: {result['requests_per_second']} req/s, p50 "
              f"{result['p50_ms']} ms, p99 {result['p99_ms']} ms, mean batch {result['mean_batch']}", flush=True)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True, help="prepared dataset directory")
    parser.add_argument("--model", help="recommender directory (default DATASET/recommender)")
    parser.add_argument("--out", required=True, help="report directory")
    parser.add_argument("--levels", default="1,8,32", help="concurrent clients per level, comma-separated")
    parser.add_argument("--requests", type=int, default=200, help="requests per level (at most)")
    parser.add_argument("--time-limit", type=float, default=60.0, help="seconds per level (at most)")
    parser.add_argument("--warmup", type=int, default=10, help="unmeasured requests before the first level")
    parser.add_argument("--top-k", type=int, default=10)
    parser.add_argument("--beams", type=int, default=20)
    parser.add_argument("--max-batch", type=int, default=64)
    parser.add_argument("--max-wait-ms", type=float, default=5.0)
    parser.add_argument("--start-timeout", type=float, default=300.0, help="seconds to wait for the server")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rule", help="a business rule (JSON, docs/rules.md) every request carries; the "
                                       "levels run twice, without it and with it, on the same server")
    args = parser.parse_args(argv)
    levels = [int(level) for level in args.levels.split(",") if level.strip()]
    if not levels or min(levels) < 1 or args.requests < 1 or args.time_limit <= 0:
        parser.error("--levels must be positive integers; --requests and --time-limit positive")

    rules = [None] if args.rule is None else [None, json.loads(args.rule)]
    port = free_port()
    server = start_server(args, port)
    try:
        health = get_json(port, "/health")
        results = [result for rule in rules for result in run_levels(args, port, levels, health["num_users"], rule)]
    finally:
        stop_process(server)

    info = hardware()
    report = {"command": command_line("bench.serve_load", argv), "hardware": info,
              "hardware_line": hardware_line(info), "server": {k: health[k] for k in ("num_users", "num_items",
                                                                                       "model", "beams")},
              "settings": {"requests_per_level": args.requests, "time_limit_s": args.time_limit,
                           "top_k": args.top_k, "max_batch": args.max_batch, "max_wait_ms": args.max_wait_ms,
                           "server_omp_threads": os.environ.get("OMP_NUM_THREADS")},
              "levels": results}
    rows = [[r["clients"], r["requests"], r["errors"], r["requests_per_second"], r["p50_ms"], r["p99_ms"],
             r["mean_batch"], "on" if r["rule"] else "off"] for r in results]
    markdown = "\n".join([
        "# genrec serve: load test", "",
        f"`{report['command']}`", "",
        f"Hardware: {report['hardware_line']}", "",
        f"Model: {health['model']} ({health['num_users']:,} users, {health['num_items']:,} items), top {args.top_k}, "
        f"beam {health['beams']}, micro-batches of up to {args.max_batch} within {args.max_wait_ms} ms; "
        f"at most {args.requests} POST /recommend per level and {args.time_limit:g} s, loopback.", "",
        *([f"Rule (rows marked on): `{args.rule}`", ""] if args.rule else []),
        *markdown_table(["clients", "requests", "errors", "requests/s", "p50 ms", "p99 ms", "mean batch", "rule"],
                        rows),
        ""])
    write_report(Path(args.out), "serve_load", report, markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())

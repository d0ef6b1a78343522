"""``genrec serve``: the HTTP JSON API and a small web page over a trained recommender."""

from __future__ import annotations

import socket

from genrec.commands.arguments import add_new_item_arguments
from genrec.core.errors import GenrecError
from genrec.core.limits import DEFAULT_BEAMS, DEFAULT_MAX_QUEUE, DEFAULT_TIMEOUT_S

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _check_address(host: str, port: int) -> None:
    """Fail before the (slow) model load if the address is taken or not this machine's."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as exc:
        raise GenrecError(f"cannot listen on {host}:{port}: {exc.strerror or exc}; pick another --port or --host") from None


def _serve(args) -> int:
    from genrec.core.allocator import limit_malloc_arenas
    from genrec.pipeline import load_trained

    try:
        import uvicorn

        from genrec.serve import create_app
    except ModuleNotFoundError as exc:  # pragma: no cover - both are dependencies
        raise GenrecError(f"genrec serve needs {exc.name}: pip install fastapi uvicorn") from None
    if not 0 <= args.port <= 65535:
        raise GenrecError(f"--port {args.port}: expected 0..65535")
    if args.max_batch < 1 or args.max_wait_ms < 0 or args.beams < 1 or args.max_queue < 1 or not args.timeout > 0:
        raise GenrecError("--max-batch, --max-queue and --beams must be at least 1, --max-wait-ms at least 0, "
                          "--timeout above 0")
    _check_address(args.host, args.port)
    limit_malloc_arenas()  # before any worker thread: bounded resident memory under long histories
    def load():
        return load_trained(args.dataset, args.model, fit="all", new_item_share=args.new_item_share,
                            new_item_exposure=args.new_item_exposure)

    recommender, dataset = load()
    app = create_app(recommender, dataset, beams=args.beams, max_batch=args.max_batch, max_wait_ms=args.max_wait_ms,
                     max_queue=args.max_queue, timeout_s=args.timeout, reload=load)
    _reload_on_sighup(app)
    if args.host not in LOOPBACK:
        print(f"genrec serve: no authentication; anyone who can reach {args.host}:{args.port} can use it "
              "(put it behind a proxy that authenticates, see docs/serving.md)", flush=True)
    print(f"genrec serve: {dataset.num_users:,} users, {dataset.num_items:,} items from {recommender.path}; "
          f"http://{args.host}:{args.port}/ (Ctrl-C stops)", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
    return 0


def _reload_on_sighup(app) -> None:
    """SIGHUP reloads the model and dataset (as POST /admin/reload does) in a thread of its own,
    and prints one line saying what it did."""
    import signal
    import threading

    def reload() -> None:
        try:
            done = app.state.reload()
            print(f"genrec serve: reloaded: {done['num_items']:,} items, {done['num_users']:,} users", flush=True)
        except Exception as exc:  # noqa: BLE001 - the previous model keeps serving
            print(f"genrec serve: reload failed, still serving the previous model: {exc}", flush=True)

    signal.signal(signal.SIGHUP, lambda *_: threading.Thread(target=reload, name="genrec-reload", daemon=True).start())


def register(subparsers) -> None:
    serve = subparsers.add_parser("serve", help="HTTP JSON API + web page over a trained recommender",
                                  description="HTTP JSON API and web page over a trained recommender. After "
                                              "`genrec add-items`, POST /admin/reload or SIGHUP loads the grown "
                                              "model and swaps it in without dropping requests.")
    serve.add_argument("--dataset", help="dataset (default: the one the model was trained on)")
    serve.add_argument("--model", help="recommender directory (default DATASET/recommender)")
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to listen on (default loopback only; the API has no authentication)")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--beams", type=int, default=DEFAULT_BEAMS,
                       help=f"beam width (at least top_k; default {DEFAULT_BEAMS})")
    add_new_item_arguments(serve)
    serve.add_argument("--max-batch", type=int, default=64, help="most requests decoded together")
    serve.add_argument("--max-wait-ms", type=float, default=5.0,
                       help="how long the first request of a batch waits for others")
    serve.add_argument("--max-queue", type=int, default=DEFAULT_MAX_QUEUE,
                       help=f"most requests waiting for the model; more get 503 (default {DEFAULT_MAX_QUEUE})")
    serve.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, metavar="SECONDS",
                       help=f"longest wait for recommendations; then 503 (default {DEFAULT_TIMEOUT_S:g})")
    serve.add_argument("--log-level", default="info", choices=("critical", "error", "warning", "info", "debug"))
    serve.set_defaults(func=_serve)

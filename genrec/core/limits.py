"""Request limits shared by the CLI and the HTTP API, defined once so both refuse the same input."""

MAX_TOP_K = 100  # recommendations per user (CLI --top-k and API "top_k")
MAX_BEAMS = 1000  # beam width of CLI decoding (recommend, evaluate); wider only slows decoding down

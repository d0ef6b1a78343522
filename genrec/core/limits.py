"""Request defaults and limits shared by the Python API, the CLI and the HTTP API, defined once so all
three answer the same request the same way and refuse the same input.

docs/serving.md lists them with the status code each gives in the API."""

MAX_TOP_K = 100  # recommendations per user (CLI --top-k and API "top_k")
MAX_BEAMS = 1000  # beam width of CLI decoding (recommend, evaluate); wider only slows decoding down
MAX_HISTORY = 1_000  # items in a given history (CLI --history and API "history"); the model reads the last max_history
MAX_ID_LENGTH = 256  # characters in one user or item id; no raw id in the supported datasets comes near it
MAX_ECHOED_HISTORY = 100  # most recent history items an API answer describes ("history_length" gives the full count)
MAX_BODY_BYTES = 1_000_000  # API request body; a bigger one is refused (413) before it is read whole
DEFAULT_MAX_QUEUE = 1_024  # API requests waiting for the model; more are refused (503 + Retry-After)
DEFAULT_TIMEOUT_S = 30.0  # seconds an API request may wait for its recommendations (then 503 + Retry-After)

DEFAULT_TOP_K = 10  # recommendations per user when none is asked for
DEFAULT_BEAMS = 20  # beam width of recommend, recommend --all and serve
DEFAULT_EXCLUDE_SEEN = True  # a user's own history items are not recommended back unless asked for


def check_request(top_k: int, beams: int, history_length: int = 0) -> None:
    """The shared limits on one recommendation request; a one-line GenrecError otherwise."""
    from genrec.core.errors import GenrecError

    if not 1 <= top_k <= MAX_TOP_K:
        raise GenrecError(f"top_k must be in 1..{MAX_TOP_K}, got {top_k}")
    if not 1 <= beams <= MAX_BEAMS:
        raise GenrecError(f"beams must be in 1..{MAX_BEAMS}, got {beams}")
    if history_length > MAX_HISTORY:
        raise GenrecError(f"history has {history_length:,} items; at most {MAX_HISTORY:,} are accepted")

"""Request limits shared by the CLI and the HTTP API, defined once so both refuse the same input.

docs/serving.md lists them with the status code each gives in the API."""

MAX_TOP_K = 100  # recommendations per user (CLI --top-k and API "top_k")
MAX_BEAMS = 1000  # beam width of CLI decoding (recommend, evaluate); wider only slows decoding down
MAX_HISTORY = 1_000  # items in a given history (CLI --history and API "history"); the model reads the last max_history
MAX_ID_LENGTH = 256  # characters in one user or item id; no raw id in the supported datasets comes near it
MAX_ECHOED_HISTORY = 100  # most recent history items an API answer describes ("history_length" gives the full count)
MAX_BODY_BYTES = 1_000_000  # API request body; a bigger one is refused (413) before it is read whole
DEFAULT_MAX_QUEUE = 1_024  # API requests waiting for the model; more are refused (503 + Retry-After)
DEFAULT_TIMEOUT_S = 30.0  # seconds an API request may wait for its recommendations (then 503 + Retry-After)

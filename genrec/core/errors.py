"""The one exception type for user mistakes; the CLI prints it without a traceback."""


class GenrecError(Exception):
    """A problem the user can fix (bad path, malformed file, unknown name, ...).

    The message must say what went wrong and what to do about it.
    """

"""Argument types shared by the subcommands: bad values fail while parsing, as one argparse error line."""

from __future__ import annotations

import argparse

NEW_ITEM_HELP = ("items added after training (genrec add-items) get this part of the probability, spread by "
                 "their text's match with the history (default: their share of the catalogue; 0 = off; "
                 "docs/new-items.md)")


def whole_number(low: int, high: int | None = None, why: str = ""):
    """An argparse ``type``: an int in low..high (no upper bound when ``high`` is None)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < low or (high is not None and value > high):
            bounds = f"{low}..{high}" if high is not None else f"at least {low}"
            raise argparse.ArgumentTypeError(f"expected {bounds}{why}, got {value}")
        return value

    return parse


def share(text: str) -> float:
    """An argparse ``type``: a fraction in [0, 1)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {text!r}") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {value}")
    return value

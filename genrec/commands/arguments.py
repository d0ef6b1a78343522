"""Argument types shared by the subcommands: bad values fail while parsing, as one argparse error line."""

from __future__ import annotations

import argparse

NEW_ITEM_HELP = ("items added after training (genrec add-items): mix them in with this part of the probability, "
                 "spread by their text's match with the history, instead of the exposure quota (0 = off; "
                 "docs/new-items.md)")
EXPOSURE_HELP = ("items added after training (genrec add-items): the fraction of users whose 10th place (the last "
                 "of a shorter list) goes to their best new item by text, those whose text match is most "
                 "confident (default 0.4; 0 = off; docs/new-items.md)")


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


def fraction(text: str) -> float:
    """An argparse ``type``: a fraction in [0, 1]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {text!r}") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {value}")
    return value


def add_new_item_arguments(parser: argparse.ArgumentParser) -> None:
    """--new-item-exposure / --new-item-share: how items added after training enter the ranking."""
    parser.add_argument("--new-item-exposure", type=fraction, metavar="E", help=EXPOSURE_HELP)
    parser.add_argument("--new-item-share", type=share, metavar="P", help=NEW_ITEM_HELP)

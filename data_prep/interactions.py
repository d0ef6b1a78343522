"""Turn raw (user, item, time) events into numbered, filtered, chronological user sequences.

Numbering (stable, documented; the same input always gives the same numbers):
  * users are numbered 1..N in order of first appearance in the source file (for P5-style sequence
    files that is the file's line order, so user numbers match P5's);
  * items are numbered 1..M in order of first appearance when walking the final (filtered) user
    sequences in user order, oldest interaction first (for P5 files: P5's item numbering);
  * within a user, events are ordered by timestamp, ties by position in the source file.
Raw ids are kept beside the numbers (users.parquet / items.parquet ``raw_id``).
"""

from __future__ import annotations

from dataclasses import dataclass

from genrec.core.errors import GenrecError


@dataclass
class Event:
    user: str
    item: str
    time: float  # any sortable timestamp; ties keep source order
    order: int  # position in the source, used to break time ties deterministically


@dataclass
class Sequences:
    """Filtered sequences with raw ids; ``sequences[u]`` is user ``user_ids[u]``'s items, oldest first."""

    user_ids: list[str]
    sequences: list[list[str]]

    @property
    def num_interactions(self) -> int:
        return sum(len(seq) for seq in self.sequences)

    def item_ids(self) -> list[str]:
        """Items in first-appearance order over the user-ordered sequences (the numbering order)."""
        seen: dict[str, None] = {}
        for seq in self.sequences:
            for item in seq:
                seen.setdefault(item, None)
        return list(seen)


def build_sequences(events: list[Event], dedup: bool = False) -> Sequences:
    """Group events by user in first-appearance order and sort each user's events by time.

    ``dedup`` keeps only a user's first interaction with an item (e.g. S3Rec's LastFM protocol,
    where one artist gets many tags).
    """
    by_user: dict[str, list[Event]] = {}
    for event in events:
        by_user.setdefault(event.user, []).append(event)
    users, sequences = [], []
    for user, user_events in by_user.items():
        user_events.sort(key=lambda e: (e.time, e.order))
        items = [e.item for e in user_events]
        if dedup:
            items = list(dict.fromkeys(items))
        users.append(user)
        sequences.append(items)
    return Sequences(users, sequences)


def k_core(data: Sequences, user_k: int, item_k: int) -> Sequences:
    """Drop users with < user_k and items with < item_k interactions, repeated to a fixed point."""
    users, sequences = list(data.user_ids), [list(s) for s in data.sequences]
    while True:
        counts: dict[str, int] = {}
        for seq in sequences:
            for item in seq:
                counts[item] = counts.get(item, 0) + 1
        filtered = [[i for i in seq if counts[i] >= item_k] for seq in sequences]
        keep = [index for index, seq in enumerate(filtered) if len(seq) >= user_k]
        new_users = [users[i] for i in keep]
        new_sequences = [filtered[i] for i in keep]
        if new_sequences == sequences:
            return Sequences(new_users, new_sequences)
        users, sequences = new_users, new_sequences


def _listed(names: list[str], most: int = 5) -> str:
    return ", ".join(names[:most]) + (", ..." if len(names) > most else "")


def check_leave_one_out(data: Sequences, source: str, unfiltered: Sequences | None = None) -> None:
    """Every user needs 3 interactions (train, valid, test); the error names the short users and, given
    the sequences before k-core, what ``--min-count 3`` would drop."""
    if not data.sequences:
        raise GenrecError(f"{source}: nothing left after filtering; lower --min-count or check the input files")
    short = [user for user, seq in zip(data.user_ids, data.sequences) if len(seq) < 3]
    if not short:
        return
    advice = "Use --min-count 3 or more."
    if unfiltered is not None:
        kept = k_core(unfiltered, user_k=3, item_k=3)
        users, items = len(unfiltered.user_ids), len(unfiltered.item_ids())
        advice = (f"--min-count 3 would drop {users - len(kept.user_ids)} of {users} users and "
                  f"{items - len(kept.item_ids())} of {items} items" if kept.user_ids else
                  "--min-count 3 would leave nothing") + "; or give those users more interactions."
    raise GenrecError(f"{source}: {len(short)} user(s) have fewer than 3 interactions after filtering "
                      f"({_listed(short)}); leave-one-out needs at least 3 (train, valid, test). {advice}")

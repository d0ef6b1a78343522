"""Business rules a request carries, as one JSON object, and the items they allow.

    {"where": {"category": "Skin Care", "brand": ["Avalon", "Nivea"], "price": {"<=": 20}, "in_stock": true},
     "only": ["B0001", "B0002"], "exclude": ["B0003"], "max_per": {"brand": 2}}

``where``: every condition must hold, on the item fields kept at prepare time
(``data_prep.item_fields``): a value means equality, a list membership, an object comparisons
(``<``, ``<=``, ``>``, ``>=`` on numbers; ``==``, ``!=`` on anything), all of them. ``only`` /
``exclude``: raw item ids. ``max_per``: at most N items of one value of a field in a list
(genrec.pipeline.recommendations.ranked). The allowed set is what the decoders keep inside the beam
(``recommender.prefix_scores.UnavailableItemMask``), so a top-K is full whenever K items qualify.
A malformed rule, an unknown field or id, or a rule no item satisfies is a one-line GenrecError.
"""

from __future__ import annotations

import json
import operator
from dataclasses import dataclass
from typing import Callable

import numpy as np

from genrec.core.errors import GenrecError

COMPARISONS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}
EQUALITIES = {"==": operator.eq, "!=": operator.ne}
KEYS = ("where", "only", "exclude", "max_per")
Scalar = bool | int | float | str


@dataclass(frozen=True)
class Condition:
    """One field's test: ``op`` one of <, <=, >, >=, ==, !=, in."""

    field: str
    op: str
    value: Scalar | tuple[Scalar, ...]

    def holds(self, values: np.ndarray) -> np.ndarray:
        """Which of ``values`` (object array; None = missing) pass; a missing value never does."""
        present = np.array([v is not None and v == v for v in values], dtype=bool)  # v == v: not nan
        out = np.zeros(len(values), dtype=bool)
        if self.op == "in":
            wanted = set(self.value)
            out[present] = [v in wanted for v in values[present]]
        elif self.op in COMPARISONS:
            numeric = present & np.array([isinstance(v, (int, float)) and not isinstance(v, bool) for v in values])
            out[numeric] = COMPARISONS[self.op](values[numeric].astype(np.float64), float(self.value))
        else:
            out[present] = [EQUALITIES[self.op](v, self.value) for v in values[present]]
        return out


def _scalar(where: str, value) -> Scalar:
    if not isinstance(value, (bool, int, float, str)):
        raise GenrecError(f"rule: {where} must be a string, number or true/false, got {json.dumps(value)}")
    return value


def _conditions(name: str, test) -> list[Condition]:
    if isinstance(test, list):
        if not test:
            raise GenrecError(f"rule: where.{name} is an empty list (no item can match)")
        return [Condition(name, "in", tuple(_scalar(f"where.{name}[]", v) for v in test))]
    if isinstance(test, dict):
        if not test:
            raise GenrecError(f"rule: where.{name} is an empty object; give comparisons such as {{\"<=\": 20}}")
        out = []
        for op, value in test.items():
            if op in COMPARISONS:
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    raise GenrecError(f"rule: where.{name} {op} needs a number, got {json.dumps(value)}")
            elif op not in EQUALITIES:
                raise GenrecError(f"rule: where.{name}: unknown comparison {op!r}; use "
                                  f"{', '.join([*COMPARISONS, *EQUALITIES])}")
            out.append(Condition(name, op, _scalar(f"where.{name} {op}", value)))
        return out
    return [Condition(name, "==", _scalar(f"where.{name}", test))]


def _ids(key: str, value) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, (str, int)) and not isinstance(v, bool) for v in value):
        raise GenrecError(f"rule: {key} must be a list of item ids, got {json.dumps(value)}")
    return tuple(str(v) for v in value)


def _max_per(value) -> tuple[str, int] | None:
    if value is None:
        return None
    if (not isinstance(value, dict) or len(value) != 1 or not isinstance(next(iter(value.values())), int)
            or isinstance(next(iter(value.values())), bool) or next(iter(value.values())) < 1):
        raise GenrecError(f"rule: max_per must be one field and a count >= 1, e.g. {{\"category\": 2}}, "
                          f"got {json.dumps(value)}")
    (name, count), = value.items()
    return str(name), int(count)


@dataclass(frozen=True)
class ItemRule:
    """Which items a request may get: field conditions, an allow list, a deny list (module doc)."""

    where: tuple[Condition, ...] = ()
    only: tuple[str, ...] | None = None  # raw item ids; None: any
    exclude: tuple[str, ...] = ()  # raw item ids
    max_per: tuple[str, int] | None = None  # (field, N): at most N items of one value of the field in a list

    @classmethod
    def parse(cls, rule: str | dict) -> ItemRule:
        """From a JSON object (or its text)."""
        if isinstance(rule, str):
            try:
                rule = json.loads(rule)
            except json.JSONDecodeError as exc:
                raise GenrecError(f"rule: not valid JSON ({exc.msg} at character {exc.pos})") from None
        if not isinstance(rule, dict):
            raise GenrecError(f"rule: expected a JSON object with {', '.join(KEYS)}, got {json.dumps(rule)[:80]}")
        unknown = sorted(set(rule) - set(KEYS))
        if unknown:
            raise GenrecError(f"rule: unknown key(s) {', '.join(unknown)}; a rule has {', '.join(KEYS)}")
        where = rule.get("where", {})
        if not isinstance(where, dict):
            raise GenrecError(f"rule: where must be an object of field conditions, got {json.dumps(where)[:80]}")
        conditions = tuple(c for name, test in where.items() for c in _conditions(str(name), test))
        only = _ids("only", rule["only"]) if "only" in rule else None
        return cls(conditions, only, _ids("exclude", rule.get("exclude", [])), _max_per(rule.get("max_per")))

    def allowed(self, fields: dict[str, np.ndarray], item_number: Callable[[str], int | None],
                num_items: int) -> np.ndarray:
        """bool ``[num_items + 1]``: the items the rule allows (index 0, no item, never). ``fields``:
        ``data_prep.item_fields.read_item_fields``; ``item_number``: raw id -> item id (None if unknown)."""
        allowed = np.ones(num_items + 1, dtype=bool)
        allowed[0] = False
        for condition in self.where:
            if condition.field not in fields:
                known = ", ".join(sorted(fields)) or "none (prepare the dataset again to keep its item fields)"
                raise GenrecError(f"rule: unknown item field {condition.field!r}; fields: {known}")
            allowed &= condition.holds(fields[condition.field][: num_items + 1])
        if self.only is not None:
            keep = np.zeros_like(allowed)
            keep[self._numbers("only", self.only, item_number)] = True
            allowed &= keep
        allowed[self._numbers("exclude", self.exclude, item_number)] = False
        if self.max_per is not None and self.max_per[0] not in fields:
            raise GenrecError(f"rule: max_per: unknown item field {self.max_per[0]!r}; fields: "
                              f"{', '.join(sorted(fields)) or 'none'}")
        if not allowed.any():
            raise GenrecError("rule: no item satisfies it")
        return allowed

    @staticmethod
    def _numbers(key: str, raw_ids: tuple[str, ...], item_number: Callable[[str], int | None]) -> list[int]:
        numbers = [item_number(raw) for raw in raw_ids]
        unknown = [raw for raw, number in zip(raw_ids, numbers) if number is None]
        if unknown:
            raise GenrecError(f"rule: {key}: unknown item id(s) {', '.join(unknown[:5])}")
        return [int(n) for n in numbers]

"""Compose the text that gets embedded for each item from whatever fields exist."""

from __future__ import annotations

import html


def clean(value) -> str:
    """Unescape HTML entities (Amazon titles carry &amp; etc.) and collapse white space."""
    if value is None:
        return ""
    return " ".join(html.unescape(str(value)).split())


def flatten_categories(categories) -> list[str]:
    """Amazon categories are a list of paths; keep each name once, in order."""
    names: dict[str, None] = {}
    for path in categories or []:
        for name in path if isinstance(path, (list, tuple)) else [path]:
            name = clean(name)
            if name:
                names.setdefault(name, None)
    return list(names)


def compose(fields: list[tuple[str, str]]) -> str:
    """``"Title: ...; Brand: ...; ..."`` from (label, value) pairs, skipping empty values."""
    return "; ".join(f"{label}: {value}" for label, value in fields if value)


def amazon_text(meta: dict) -> tuple[str, str]:
    """(title, text) for an Amazon item, with TIGER's fields: title, price, brand, categories."""
    title = clean(meta.get("title"))
    price = meta.get("price")
    price_text = f"{float(price):.2f}" if isinstance(price, (int, float)) else clean(price)
    text = compose(
        [("Title", title), ("Brand", clean(meta.get("brand"))),
         ("Categories", ", ".join(flatten_categories(meta.get("categories")))), ("Price", price_text)]
    )
    return title, text


def movie_text(meta: dict) -> tuple[str, str]:
    title = clean(meta.get("title"))
    return title, compose([("Title", title), ("Genres", ", ".join(meta.get("genres", [])))])


def artist_text(meta: dict) -> tuple[str, str]:
    title = clean(meta.get("title"))
    return title, compose([("Artist", title), ("Tags", ", ".join(clean(t) for t in meta.get("tags", [])))])


def generic_text(meta: dict, id_column: str, title_column: str | None = None) -> tuple[str, str]:
    """Custom items: every non-id column, in file order; the title is a 'title' or 'name' column if any,
    else ``title_column``'s value."""
    title = clean(meta.get("title") or meta.get("name") or (title_column and meta.get(title_column)) or "")
    fields = [(str(k).replace("_", " ").capitalize(), clean(v)) for k, v in meta.items() if k != id_column]
    return title, compose(fields)

"""The built-in ``demo`` dataset: a synthetic beauty shop, generated deterministically offline.

Structure a recommender can learn (and popularity cannot):
  * items belong to product lines (brand x sub-category) whose products form a routine
    (cleanser -> toner -> serum -> ...); users tend to buy the next step of what they just bought;
  * each user has a taste for one or two categories and a few brands;
  * a mild Zipf popularity skew on top, so popularity is a fair but beatable baseline.
"""

from __future__ import annotations

import numpy as np

from genrec.data_prep.interactions import Event

CATEGORIES = {
    "Skin Care": (["Face", "Eyes", "Body", "Sun"], ["cleanser", "toner", "serum", "moisturizer", "mask", "eye cream"]),
    "Hair Care": (["Shampoo", "Styling", "Treatment", "Color"], ["shampoo", "conditioner", "hair mask", "leave-in spray", "styling gel", "hair oil"]),
    "Makeup": (["Face", "Eyes", "Lips", "Nails"], ["primer", "foundation", "concealer", "powder", "blush", "setting spray"]),
    "Fragrance": (["Women", "Men", "Unisex", "Gift Sets"], ["body mist", "eau de toilette", "eau de parfum", "perfume oil", "scented lotion", "travel spray"]),
    "Bath & Body": (["Bath", "Shower", "Hands", "Feet"], ["bath salts", "shower gel", "body scrub", "body butter", "hand cream", "foot balm"]),
    "Tools & Accessories": (["Brushes", "Mirrors", "Devices", "Bags"], ["brush set", "sponge", "brush cleaner", "makeup bag", "mirror", "facial roller"]),
    "Men's Grooming": (["Shaving", "Beard", "Skin", "Hair"], ["pre-shave oil", "shaving cream", "aftershave balm", "beard oil", "beard balm", "face wash"]),
    "Nail Care": (["Polish", "Treatment", "Tools", "Removers"], ["base coat", "nail polish", "top coat", "cuticle oil", "nail file", "polish remover"]),
}
ADJECTIVES = ["Hydrating", "Gentle", "Radiant", "Daily", "Ultra", "Pure", "Nourishing", "Matte", "Silky", "Fresh",
              "Organic", "Intense", "Soothing", "Classic", "Luxe", "Clarifying"]
BRAND_WORDS = ["Lumi", "Vera", "Nova", "Aura", "Bloom", "Sol", "Mira", "Oro", "Kai", "Zen", "Iris", "Luna", "Vita",
               "Ember", "Coral", "Sage", "Opal", "Rue", "Fern", "Juno"]
BRAND_SUFFIX = ["Labs", "Beauty", "Botanics", "Skin", "Co.", "Naturals"]


def generate_demo(num_users: int = 4000, num_brands: int = 36, lines_per_brand: int = 16, seed: int = 7):
    """Return (events, item metadata) for the demo shop. Same arguments -> same data, byte for byte."""
    rng = np.random.default_rng(seed)
    categories = list(CATEGORIES)
    brands = []
    for b in range(num_brands):
        name = f"{BRAND_WORDS[b % len(BRAND_WORDS)]} {BRAND_SUFFIX[(b * 7 + b // len(BRAND_WORDS)) % len(BRAND_SUFFIX)]}"
        focus = rng.choice(len(categories), size=2, replace=False)
        brands.append((name, [categories[i] for i in focus]))

    meta: dict[str, dict] = {}
    lines: list[list[str]] = []  # each product line is an ordered routine of item ids
    brand_items: list[list[str]] = [[] for _ in brands]
    category_items: dict[str, list[str]] = {c: [] for c in categories}
    for b, (brand, focus) in enumerate(brands):
        for _ in range(lines_per_brand):
            category = focus[int(rng.integers(len(focus)))]
            subcategories, nouns = CATEGORIES[category]
            sub = subcategories[int(rng.integers(len(subcategories)))]
            adjective = ADJECTIVES[int(rng.integers(len(ADJECTIVES)))]
            steps = sorted(rng.choice(len(nouns), size=int(rng.integers(3, 6)), replace=False))
            base_price = float(rng.choice([6, 9, 12, 15, 19, 24, 29, 39, 49]))
            line = []
            for step in steps:
                item = f"D{len(meta) + 1:05d}"
                size = ["1 oz", "1.7 oz", "3.4 oz", "6.8 oz", "8 oz"][int(rng.integers(5))]
                meta[item] = {
                    "title": f"{brand} {adjective} {nouns[step].title()} {size}",
                    "brand": brand,
                    "categories": [["Beauty", category, sub]],
                    "price": round(base_price * float(rng.uniform(0.8, 1.3)), 2),
                }
                line.append(item)
                brand_items[b].append(item)
                category_items[category].append(item)
            lines.append(line)
    items = list(meta)
    next_in_line = {}
    for line in lines:
        for a, b in zip(line, line[1:]):
            next_in_line[a] = b
    popularity = 1.0 / np.arange(1, len(items) + 1) ** 0.6
    popularity_order = rng.permutation(len(items))
    popularity = popularity[np.argsort(popularity_order)]
    popularity /= popularity.sum()

    events: list[Event] = []
    for u in range(num_users):
        user = f"U{u + 1:05d}"
        liked_brands = rng.choice(num_brands, size=int(rng.integers(2, 4)), replace=False)
        pool = [item for b in liked_brands for item in brand_items[b]]
        length = int(rng.integers(5, 16))
        current = pool[int(rng.integers(len(pool)))]
        bought = [current]
        for _ in range(length - 1):
            roll = rng.random()
            if roll < 0.55 and current in next_in_line:
                current = next_in_line[current]  # next step of the routine
            elif roll < 0.85:
                current = pool[int(rng.integers(len(pool)))]  # something else from a favourite brand
            else:
                current = items[int(rng.choice(len(items), p=popularity))]  # a popular item
            bought.append(current)
        events.extend(Event(user, item, float(t), len(events) + t) for t, item in enumerate(bought))
    return events, meta

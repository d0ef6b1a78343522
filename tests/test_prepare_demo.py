"""The built-in demo shop: deterministic, the size the README promises, and sequential structure that
a next-item model can use and popularity cannot."""

from collections import Counter, defaultdict

import pytest

import genrec.core.layout
from genrec.data_prep.dataset import load_processed_dataset
from genrec.data_prep.demo import generate_demo
from genrec.data_prep.prepare import prepare_dataset


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    old_root, genrec.core.layout.DATA_ROOT = genrec.core.layout.DATA_ROOT, root / "data-root"
    try:
        prepare_dataset("demo", root / "a", root)
    finally:
        genrec.core.layout.DATA_ROOT = old_root
    return load_processed_dataset(root / "a")


def test_demo_is_deterministic(demo):
    events_a, meta_a = generate_demo(num_users=300)
    events_b, meta_b = generate_demo(num_users=300)
    assert events_a == events_b and meta_a == meta_b
    assert generate_demo(num_users=300, seed=8)[0] != events_a


def test_demo_size_and_text(demo):
    assert 2000 <= demo.num_items <= 3000 and 3000 <= demo.num_users <= 5000
    assert 8 <= sum(map(len, demo.sequences)) / demo.num_users <= 10.5
    text = demo.item_texts[0]
    assert text.startswith(f"Title: {demo.item_titles[0]}; Brand: ") and "Categories: Beauty, " in text and "Price: " in text
    assert len(set(demo.item_titles)) > 0.9 * demo.num_items


def recall_at_10(demo, rank):
    hits = sum(seq[-1] in rank(seq[:-1]) for seq in demo.sequences)
    return hits / demo.num_users


def test_sequential_model_clearly_beats_popularity(demo):
    """Test-split Recall@10 of a first-order Markov chain vs most-popular, both fit on training prefixes."""
    popularity = Counter(i for seq in demo.sequences for i in seq[:-1])
    top = [i for i, _ in popularity.most_common(10)]
    follows = defaultdict(Counter)
    for seq in demo.sequences:
        for a, b in zip(seq[:-2], seq[1:-1]):
            follows[a][b] += 1

    def markov(history):
        ranked = [i for i, _ in follows[history[-1]].most_common(10)]
        return ranked + [i for i in top if i not in ranked][: 10 - len(ranked)]

    popular, sequential = recall_at_10(demo, lambda h: top), recall_at_10(demo, markov)
    assert popular > 0.005  # popularity is a real (if weak) baseline
    assert sequential > 5 * popular


def test_users_have_consistent_brand_taste(demo):
    """Most of a user's items come from a few brands (the generator's 2-3 favourites plus noise)."""
    brand = [text.split("Brand: ")[1].split(";")[0] for text in demo.item_texts]
    shares = [Counter(brand[i - 1] for i in seq).most_common(3) for seq in demo.sequences]
    top3 = sum(sum(c for _, c in s) for s in shares) / sum(map(len, demo.sequences))
    assert top3 > 0.7

"""Shared test setup: keep everything offline and small."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# One torch thread, as the subprocesses the tests start: runs compared for exact equality use the same kernels.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")


# The files that take longest, first: the two xdist workers (`-n 2 --dist loadfile`) take files in
# collection order, so a long file collected late would run alone at the end.
LONGEST_FIRST = ("test_pipeline_api.py", "test_catalogue.py", "test_recommend_all.py")


def pytest_collection_modifyitems(config, items):
    rank = {name: place for place, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the rest keep their order

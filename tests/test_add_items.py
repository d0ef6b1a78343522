"""``genrec add-items``: new items get SIDs from the trained tokenizer and join a trained
recommender's trie; nothing that existed changes; reruns and interruptions are safe; bad files
give clear errors."""

import hashlib
import json

import numpy as np
import pytest
import torch

from genrec import pipeline
from genrec.cli import main
from genrec.core.errors import GenrecError
from genrec.data_prep import embeddings
from genrec.data_prep.dataset import load_processed_dataset
from genrec.data_prep.prepare import append_items
from genrec.recommender.constraint import prefix_states
from genrec.recommender.recommender import Recommender
from genrec.tokenizer.artifact import load_semantic_ids
from genrec.tokenizer.rkmeans import RKMeansConfig
from tests.recommender_fixtures import write_dataset, write_embedding_cache

DIM = 12
TINY = {"d_model": 16, "d_ff": 32, "num_heads": 2, "d_kv": 8, "num_encoder_layers": 1, "num_decoder_layers": 1}


class FakeEncoder:
    """Stands in for the sentence encoder: a text it saw at training time maps near that item's
    vector (so a copy of an item lands in its bucket); any other text maps to a hashed vector."""

    def __init__(self, known: dict[str, np.ndarray]):
        self.known = known

    def encode(self, texts, **_):
        rows = []
        for text in texts:
            seed = int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)
            noise = np.random.default_rng(seed).normal(size=DIM)
            rows.append(self.known[text] + 1e-4 * noise if text in self.known else noise / np.linalg.norm(noise))
        return np.asarray(rows, dtype=np.float32)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("catalog")
    data = write_dataset(root / "data", num_users=60, num_items=40)
    texts = load_processed_dataset(data).item_texts
    vectors = np.random.default_rng(0).normal(size=(len(texts), DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    write_embedding_cache(data, vectors)
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setattr(embeddings, "hub_reachable", lambda timeout=3.0: False)
    pipeline.train_tokenizer(pipeline.TokenizerTrainingConfig(data, method="rkmeans", progress=False,
                                                              options=RKMeansConfig(codebook_size=4, kmeans_iters=5)))
    torch.manual_seed(0)
    pipeline.train_recommender(pipeline.RecommenderTrainingConfig.from_options(
        data, model=TINY, train={"max_steps": 6, "eval_every": 6, "eval_users": 0, "batch_size": 16,
                                 "warmup_steps": 1}, progress=False, sasrec_beside=None))
    known = dict(zip(texts, vectors))
    monkeypatch.setattr(embeddings, "load_encoder", lambda name, device=None: FakeEncoder(known))
    yield root, data, texts
    monkeypatch.undo()


def snapshot(data):
    return {"sids": load_semantic_ids(data / "tokenizer").codes.copy(),
            "bundled": load_semantic_ids(data / "recommender" / "tokenizer").codes.copy(),
            "vectors": np.load(next((data / "embeddings").iterdir()) / embeddings.EMBEDDINGS_FILE)}


def test_new_items_get_fresh_sids_join_the_trie_and_nothing_old_changes(trained, capsys):
    root, data, texts = trained
    before = snapshot(data)
    items = root / "new.jsonl"
    rows = [{"id": "N1", "title": "copy of item 3", "text": texts[2]},  # same text: item 3's bucket
            {"id": "N2", "title": "brand new", "text": "Title: something never seen"},
            {"id": "N3", "title": "another", "text": "Title: another new thing"}]
    items.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["add-items", "--dataset", str(data), "--items", str(items)]) == 0
    assert "added 3 item(s) as ids 41..43" in capsys.readouterr().out

    after = snapshot(data)
    for key in ("sids", "bundled", "vectors"):  # old rows identical, three new rows
        np.testing.assert_array_equal(after[key][:40], before[key])
        assert len(after[key]) == 43
    sids = after["sids"]
    assert len({tuple(r) for r in sids}) == 43  # every full SID names one item
    assert sids[40][-1] < load_semantic_ids(data / "tokenizer").suffix_size
    first_choice = (sids[40][:-1] == sids[2][:-1]).all()  # the copy of item 3 sits in item 3's bucket ...
    bucket_full = ((sids[:40, :-1] == sids[2][:-1]).all(1).sum() >= load_semantic_ids(data / "tokenizer").suffix_size)
    assert first_choice or bucket_full  # ... unless that bucket had no free suffix left
    if first_choice:
        assert sids[40][-1] == (sids[:40, :-1] == sids[2][:-1]).all(1).sum()  # the next suffix there

    dataset = load_processed_dataset(data)
    assert dataset.num_items == 43 and dataset.item_raw_id(42) == "N2" and dataset.item_title(41) == "copy of item 3"
    stats = json.loads((data / "stats.json").read_text())
    assert stats["num_items"] == 43 and stats["items_added"] == 3
    recommender = Recommender.load(data / "recommender")
    tokens = torch.from_numpy(recommender.vocab.item_tokens(sids[40:]))
    assert prefix_states(recommender.table, tokens).tolist() == [41, 42, 43]  # the trie reaches the new items
    everything, _ = recommender.recommend([[1, 2, 3]], top_k=43)
    assert sorted(everything[0].tolist()) == list(range(1, 44))  # a beam as wide as the catalogue finds them all

    assert main(["add-items", "--dataset", str(data), "--items", str(items)]) == 0  # a rerun changes nothing
    assert "3 item(s) already in the catalogue" in capsys.readouterr().out
    np.testing.assert_array_equal(snapshot(data)["sids"], sids)


def test_an_interrupted_run_is_finished_by_the_next(trained):
    root, data, _ = trained
    count = load_processed_dataset(data).num_items
    append_items(data, [("N9", "half added", "Title: half added")])  # "killed" after writing the items only
    recommender, dataset = pipeline.load_trained(data, None)  # still works, on the version it knows
    assert recommender.num_items == dataset.num_items == count
    with pytest.raises(GenrecError, match="unknown item"):
        dataset.item_id_for("N9")
    (root / "empty.csv").write_text("id,title\n")
    result = pipeline.add_items(pipeline.AddItemsConfig(root / "empty.csv", dataset=data))
    assert result.item_ids == [count + 1]
    recommender, dataset = pipeline.load_trained(data, None)
    assert recommender.num_items == dataset.num_items == count + 1 and dataset.item_id_for("N9") == count + 1


def test_bad_item_files_are_clear_errors(trained, capsys):
    root, data, _ = trained
    cases = {
        "noid.csv": ("title,text\nx,Title: x\n", "noid.csv, line 2: no 'id' column (the file has: title, text; "
                                                 "set --id-column)"),
        "emptyid.csv": ("id,text\nZ0,Title: z\n,Title: x\n", "emptyid.csv, line 3, column 'id': empty cell"),
        "twice.csv": ("id,text\nZ1,Title: a\nZ1,Title: b\n", "twice.csv, line 3: item 'Z1' appears twice in the file "
                                                            "(first on line 2)"),
        "notext.csv": ("id,price\nZ2,\n", "no text to embed"),
        "broken.jsonl": ('{"id": "Z3"\n', "invalid JSON"),
        # an unterminated quote would swallow NEW012 into NEW011's title; a stray one mangles a title
        "unterminated.csv": ('id,title\nNEW010,Ok\nNEW011,"unterminated\nNEW012,Fine\n',
                             "unterminated.csv, line 3: malformed line (unbalanced quote: the quoted field opened "
                             "on this line never closes)"),
        "stray.csv": ('id,title,category\nX1,"Green, "tea" pot,Teapot\n', "stray.csv, line 2: malformed line "
                                                                          "(unbalanced quote"),
        "ragged.tsv": ("id\ttitle\nR1\tOne\nR2\tTwo\textra\n", "ragged.tsv, line 3: malformed line (3 fields, header "
                                                               "has 2)"),
    }
    before = {path: path.read_bytes() for path in sorted(data.rglob("*")) if path.is_file()}
    for name, (content, message) in cases.items():
        (root / name).write_text(content)
        assert main(["add-items", "--dataset", str(data), "--items", str(root / name)]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, name
    assert {path: path.read_bytes() for path in sorted(data.rglob("*")) if path.is_file()} == before  # nothing changed
    assert main(["add-items", "--dataset", str(data), "--items", str(root / "missing.csv")]) == 2
    assert main(["add-items", "--dataset", str(data), "--items", str(root / "noid.csv"),
                 "--model", str(root / "nowhere")]) == 2
    assert "not a trained recommender" in capsys.readouterr().err


"""One id rule for users and items, CLI and API: an int is the dataset number; a string is the raw
id it equals, else "17" / "#17" the dataset number (docs/serving.md)."""

import dataclasses
import json

import pytest
from fastapi.testclient import TestClient

from genrec.cli import main
from genrec.core.errors import GenrecError
from genrec.core.limits import MAX_HISTORY
from genrec.serve import ID_RULE, create_app
from tests.serve_fixtures import loaded, trained  # noqa: F401 - pytest fixtures


@pytest.fixture(scope="module")
def numeric(loaded):
    """The tiny dataset with raw ids that are numbers, reversed: item i has raw id str(31 - i), user u str(21 - u)."""
    recommender, dataset = loaded
    renamed = dataclasses.replace(dataset, item_raw_ids=[str(31 - i) for i in range(1, 31)],
                                  user_raw_ids=[str(21 - u) for u in range(1, 21)], raw_id_indexes={})
    return recommender, renamed


@pytest.mark.parametrize("value, user, item", [
    (3, 3, 3), ("3", 18, 28), ("#3", 3, 3), (17, 17, 17), ("17", 4, 14), ("#17", 17, 17), ("21", None, 10),
    ("#21", None, 21), ("31", None, None), (0, None, None), ("007", 7, 7), ("²", None, None), ("٣", None, None),
    (" 3", None, None), ("3\0", None, None), ("\ud800", None, None), (True, None, None), ("#", None, None),
])
def test_the_rule_for_users_and_items_alike(numeric, value, user, item):
    _, dataset = numeric
    for lookup, expected, kind in ((dataset.user_id_for, user, "user"), (dataset.item_id_for, item, "item")):
        if expected is None:
            with pytest.raises(GenrecError, match=f"unknown {kind}"):
                lookup(value)
        else:
            assert lookup(value) == expected


def test_the_api_follows_the_rule(numeric):
    with TestClient(create_app(*numeric)) as client:
        def history_of(body):
            return [row["item_id"] for row in client.post("/recommend", json=body).json()["history"]]

        assert history_of({"history": [17, "17", "#17"]}) == [17, 14, 17]
        assert client.post("/recommend", json={"user": 3}).json()["user"] == 3
        assert client.post("/recommend", json={"user": "3"}).json()["user"] == 18
        assert client.post("/recommend", json={"user": "#3"}).json()["user"] == 3
        assert client.get("/users/3").json()["user_id"] == 18 and client.get("/users/%233").json()["user_id"] == 3
        assert client.get("/items/17").json()["item_id"] == 14 and client.get("/items/%2317").json()["item_id"] == 17
        schema = client.get("/openapi.json").json()["components"]["schemas"]["RecommendRequest"]["properties"]
    assert ID_RULE in schema["user"]["description"] and ID_RULE in schema["history"]["description"]


def test_without_numeric_raw_ids_digits_are_the_dataset_number(loaded):
    _, dataset = loaded
    assert dataset.user_id_for("4") == dataset.user_id_for("U4") == dataset.user_id_for("#4") == 4
    assert dataset.item_id_for("7") == dataset.item_id_for(7) == dataset.item_id_for("I7") == 7


@pytest.mark.parametrize("args, message", [
    (["--user", "²"], "unknown user '²'"),
    (["--user", "\udcff"], "unknown user"),
    (["--history", "I1", "³"], "unknown item '³'"),
    (["--history", *["I1"] * (MAX_HISTORY + 1)], f"at most {MAX_HISTORY:,} are accepted"),
])
def test_the_cli_gives_a_one_line_error_for_bad_ids(trained, capsys, args, message):
    assert main(["recommend", "--model", str(trained / "model"), "--dataset", str(trained / "data"), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_the_cli_follows_the_rule(trained, capsys):
    assert main(["recommend", "--model", str(trained / "model"), "--dataset", str(trained / "data"), "--user", "#3",
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["user"] == 3

"""A tiny trained recommender and its dataset for the genrec serve tests (trained once per module)."""

import pytest
from fastapi.testclient import TestClient

from genrec.data_prep.dataset import load_processed_dataset
from genrec.recommender.recommender import Recommender
from genrec.serve import create_app
from tests.recommender_fixtures import train_tiny_recommender


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    return train_tiny_recommender(tmp_path_factory.mktemp("serve"), num_users=20)


@pytest.fixture(scope="module")
def loaded(trained):
    return Recommender.load(trained / "model"), load_processed_dataset(trained / "data")


@pytest.fixture
def client(loaded):
    with TestClient(create_app(*loaded)) as client:
        yield client

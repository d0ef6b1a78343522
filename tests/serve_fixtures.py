"""A tiny trained recommender and its dataset for the genrec serve tests (trained once per module),
and a real loopback server around an app."""

import threading
import time
from contextlib import contextmanager

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


@contextmanager
def running_server(app):
    """``app`` served by uvicorn on 127.0.0.1 in a thread (a real socket, for clients with timeouts); yields its URL."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)

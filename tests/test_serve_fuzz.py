"""``genrec serve`` fuzzed from its own OpenAPI schema with schemathesis (hypothesis underneath):
every operation, valid and invalid generated requests over loopback, zero 5xx and no hang.

Schema-generated ids almost never exist, so a third pass sends /recommend bodies whose ids are
drawn from the dataset as well, to reach decoding. The default suite sends several hundred
requests; the slow tier (``-m slow``) several thousand."""

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from genrec.serve import create_app
from tests.serve_fixtures import loaded, running_server, trained  # noqa: F401 - pytest fixtures

REQUEST_TIMEOUT_S = 20  # a request unanswered this long is a hang


def dataset_bodies(dataset):
    """/recommend bodies with ids that exist (raw and numbered) mixed with ones that do not."""
    users = st.sampled_from(dataset.user_raw_ids) | st.integers(0, dataset.num_users + 1) | st.text(max_size=8)
    items = st.sampled_from(dataset.item_raw_ids) | st.integers(0, dataset.num_items + 1) | st.text(max_size=8)
    options = {"top_k": st.integers(0, 101), "exclude_seen": st.booleans()}
    return st.fixed_dictionaries({"user": users}, optional=options) | \
        st.fixed_dictionaries({"history": st.lists(items, max_size=40)}, optional=options)


class Fuzzer:
    """Sends generated requests to a running server; counts answers by status class and fails on
    a 5xx, a connection error or a request slower than REQUEST_TIMEOUT_S (a hang)."""

    def __init__(self, app, base_url: str, examples: int):
        self.schema = schemathesis.openapi.from_dict(app.openapi())
        self.base_url, self.examples = base_url, examples
        self.counts: dict = {"requests": 0, "operations": 0}

    def send(self, case) -> None:
        response = case.call(base_url=self.base_url, timeout=REQUEST_TIMEOUT_S)
        self.counts["requests"] += 1
        key = f"{response.status_code // 100}xx"
        self.counts[key] = self.counts.get(key, 0) + 1
        assert response.status_code < 500, f"{response.status_code} {response.text[:300]} for {case.as_curl_command()}"

    def run(self, strategy) -> None:
        """Draw up to ``examples`` cases from ``strategy`` and send each (hypothesis shrinks a failure)."""
        @settings(max_examples=self.examples, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        @given(case=strategy)
        def check(case):
            self.send(case)

        check()

    def every_operation(self, dataset) -> dict:
        for result in self.schema.get_all_operations():
            operation = result.ok()
            self.counts["operations"] += 1
            for mode in GenerationMode:
                try:
                    self.run(operation.as_strategy(generation_mode=mode))
                except Unsatisfiable:  # nothing to make invalid: no input, or a path id (any string is one)
                    no_input = operation.method.upper() == "GET" or operation.label == "POST /admin/reload"
                    assert mode is GenerationMode.NEGATIVE and no_input, operation.label
            if operation.label == "POST /recommend":
                self.run(dataset_bodies(dataset).map(lambda body, op=operation: op.Case(body=body,
                                                                                         media_type="application/json")))
        return self.counts


def test_a_quick_fuzz_of_every_operation_gives_no_5xx(loaded):
    app = create_app(*loaded)
    with running_server(app) as url:
        counts = Fuzzer(app, url, examples=120).every_operation(loaded[1])
    print("fuzz:", counts)
    assert counts["operations"] == 6 and counts["requests"] >= 500 and "5xx" not in counts, counts
    assert counts.get("2xx", 0) > 20 and counts.get("4xx", 0) > 300  # decoded answers and refusals both


@pytest.mark.slow
def test_thousands_of_fuzzed_requests_give_no_5xx(loaded):
    app = create_app(*loaded)
    with running_server(app) as url:
        counts = Fuzzer(app, url, examples=1500).every_operation(loaded[1])
    print("fuzz:", counts)
    assert counts["requests"] >= 5000 and "5xx" not in counts and counts.get("2xx", 0) > 200, counts

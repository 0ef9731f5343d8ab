"""The GRPO reward source: whole-call retries, then RewardUnavailableError; 4xx refusals are not retried."""

import pytest

from ie_eval.rl.launch import free_port
from ie_eval.rl.scorers import RetryingScorer, RewardSourceConfig, RewardUnavailableError, build_scorer
from ie_eval.serve.base import RewardItem, RewardServerError
from ie_eval.serve.client import RewardClient


def closed_port_url() -> str:
    return f"http://127.0.0.1:{free_port()}"  # nothing listens there once the probe socket is closed


class CountingScorer:
    """Counts calls to a real scorer (attempts are what is under test)."""

    def __init__(self, inner):
        self.inner, self.calls = inner, 0

    def score(self, items):
        self.calls += 1
        return self.inner.score(items)


def item(edit_record_factory, critique="fine"):
    record = edit_record_factory()
    return RewardItem(record.source_image, record.edited_image, record.instruction, critique)


def test_dead_server_is_retried_then_unavailable(edit_record_factory):
    client = CountingScorer(RewardClient(closed_port_url(), max_retries=0, timeout_s=1.0))
    scorer = RetryingScorer(client, attempts=3, backoff_s=0.01)
    with pytest.raises(RewardUnavailableError, match="3 scoring attempts failed"):
        scorer.score([item(edit_record_factory)])
    assert client.calls == 3


def test_refused_input_is_not_retried(edit_record_factory):
    class Refusing:
        calls = 0

        def score(self, items):
            self.calls += 1
            raise RewardServerError("refused: critique is empty", status=422, field="items[0].critique")

    inner = Refusing()
    with pytest.raises(RewardServerError, match="refused") as caught:
        RetryingScorer(inner, attempts=3, backoff_s=0.01).score([item(edit_record_factory)])
    assert not isinstance(caught.value, RewardUnavailableError) and inner.calls == 1


def test_build_scorer_needs_a_source():
    with pytest.raises(ValueError, match="url.*ckpt"):
        build_scorer(RewardSourceConfig())

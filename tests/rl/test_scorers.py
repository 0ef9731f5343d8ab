"""The GRPO reward source: ReRewardTerm is one retry layer with a deadline; refused items are penalized, other
failures named."""

import math
import time

import pytest

from ie_eval.commands.grpo import free_port
from ie_eval.rl.scorers import RewardSourceConfig, RewardUnavailableError, ScoringGuard, build_scorer
from ie_eval.rl.terms import ReRewardTerm
from ie_eval.serve.base import RewardItem, RewardScores, RewardServerError
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


class Scripted:
    """Answers each call with the next scripted result (scores or an exception)."""

    def __init__(self, *answers):
        self.answers, self.seen = list(answers), []

    def score(self, items):
        self.seen.append([i.critique for i in items])
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer(items) if callable(answer) else answer


def guarded(scorer, **guard) -> ReRewardTerm:
    """The RE-Reward term around `scorer`: GRPO's one retry layer."""
    return ReRewardTerm(scorer, guard=ScoringGuard(**guard))


def item(edit_record_factory, critique="fine"):
    record = edit_record_factory()
    return RewardItem(record.source_image, record.edited_image, record.instruction, critique)


def ok(items):
    return [RewardScores(0.1, 0.2, 0.3, 0.2) for _ in items]


def test_dead_server_is_retried_then_unavailable(edit_record_factory):
    client = CountingScorer(RewardClient(closed_port_url(), max_retries=0, timeout_s=1.0))
    scorer = guarded(client, attempts=3, backoff_s=0.01)
    with pytest.raises(RewardUnavailableError, match="3 attempts") as caught:
        scorer.score([item(edit_record_factory)])
    assert client.calls == 3 and caught.value.cause == "unreachable"


def test_the_deadline_bounds_the_whole_step_whatever_the_attempts(edit_record_factory):
    client = CountingScorer(RewardClient(closed_port_url(), max_retries=0, timeout_s=1.0))
    scorer = guarded(client, attempts=1000, backoff_s=0.2, deadline_s=1.0)
    started = time.monotonic()
    with pytest.raises(RewardUnavailableError, match="deadline_s=1.0"):
        scorer.score([item(edit_record_factory)])
    assert time.monotonic() - started < 3.0 and client.calls < 20


def test_a_refused_item_gets_the_penalty_and_the_rest_are_scored(edit_record_factory):
    inner = Scripted(RewardServerError("too long", status=422, field="items.1.critique"), ok)
    scorer = guarded(inner, refused_penalty=-5.0)
    scores = scorer.score([item(edit_record_factory, "a"), item(edit_record_factory, "b"), item(edit_record_factory, "c")])
    assert [s.reward for s in scores] == [0.2, -5.0, 0.2] and scorer.refused_items == 1
    assert inner.seen == [["a", "b", "c"], ["a", "c"]]


def test_over_long_critiques_are_cut_before_they_are_sent(edit_record_factory):
    inner = Scripted(ok)
    guarded(inner, max_critique_chars=4).score([item(edit_record_factory, "abcdefgh")])
    assert inner.seen == [["abcd"]]


def test_a_refusal_not_about_one_item_stops_with_its_cause(edit_record_factory):
    inner = Scripted(RewardServerError("bad body", status=400, field="body"))
    with pytest.raises(RewardUnavailableError, match="refused") as caught:
        guarded(inner).score([item(edit_record_factory)])
    assert caught.value.cause == "refused"


@pytest.mark.parametrize(("answer", "cause"), [
    (lambda items: [RewardScores(math.nan, 0.0, 0.0, math.nan) for _ in items], "non_finite"),
    (lambda items: [RewardScores(0.0, 0.0, 0.0, math.inf) for _ in items], "non_finite"),
    (lambda items: ok(items)[:-1], "wrong_count"),
])
def test_bad_scores_are_never_returned(edit_record_factory, answer, cause):
    with pytest.raises(RewardUnavailableError) as caught:
        guarded(Scripted(answer)).score([item(edit_record_factory), item(edit_record_factory)])
    assert caught.value.cause == cause


def test_guard_options_are_checked():
    with pytest.raises(ValueError, match="attempts >= 1"):
        RewardSourceConfig(attempts=0)


def test_build_scorer_needs_a_source():
    with pytest.raises(ValueError, match="url.*ckpt"):
        build_scorer(RewardSourceConfig())


def reward_samples(edit_record_factory, count):
    from ie_eval.rl.rewards import RewardSample

    record = edit_record_factory()
    return [RewardSample(record.source_image, record.edited_image, record.instruction, f"critique {i}")
            for i in range(count)]


def test_prefetched_chunks_and_the_call_share_one_step_deadline(edit_record_factory):
    """Overlapped scoring: a step whose server is down fails within one deadline_s, not one per chunk."""
    client = CountingScorer(RewardClient(closed_port_url(), max_retries=0, timeout_s=1.0))
    term = guarded(client, attempts=1000, backoff_s=0.2, deadline_s=1.0)
    samples = reward_samples(edit_record_factory, 4)
    started = time.monotonic()
    term.prefetch(samples[:2])  # fails quietly: the call scores these again and raises
    term.prefetch(samples[2:])
    with pytest.raises(RewardUnavailableError, match="deadline_s=1.0"):
        term(samples)
    assert time.monotonic() - started < 2.5


def test_prefetched_scores_are_used_once_and_refusals_counted_once(edit_record_factory):
    refused = RewardServerError("items.1: the critique is empty", status=422, field="items.1")
    scorer = Scripted(refused, ok, ok)
    term = guarded(scorer)
    samples = reward_samples(edit_record_factory, 3)
    term.prefetch(samples)  # item 1 refused (penalty), the rest scored
    assert term.refused_items == 1 and len(scorer.seen) == 2
    values = term(samples)  # all three prefetched: no further scorer call
    assert len(scorer.seen) == 2 and values[1] == pytest.approx(-3.0) and term.refused_items == 1
    term(samples)  # a prefetch serves one call only
    assert len(scorer.seen) == 3

"""Score normalization (ReasonEdit eqs. 1-3) against values worked out by hand."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import norm

from ie_eval.data.normalize import midpoint_ecdf, normalize_ratings, normalize_records
from ie_eval.data.records import CRITIQUE_DIMS, MOS_DIMS, EditRecord

# Annotator a rates items 1-4 as [1, 2, 2, 3]; annotator b rates items 1-3 as [5, 3, 4].
TWO_ANNOTATORS = [{"a": 1, "b": 5}, {"a": 2, "b": 3}, {"a": 2, "b": 4}, {"a": 3}]


def test_midpoint_ecdf_by_hand() -> None:
    # N = 4. F(1) = 1/4, c(1) = 1 -> 1/4 - 1/8 = 0.125
    #        F(2) = 3/4, c(2) = 2 -> 3/4 - 2/8 = 0.5
    #        F(3) = 1,   c(3) = 1 -> 1 - 1/8   = 0.875
    assert midpoint_ecdf([1, 2, 2, 3]) == pytest.approx({1.0: 0.125, 2.0: 0.5, 3.0: 0.875})
    assert midpoint_ecdf([]) == {}


def test_single_annotator_probit() -> None:
    targets = normalize_ratings([{"a": 1}, {"a": 2}, {"a": 2}, {"a": 3}])
    # p(2) = 0.5 -> probit 0; p(1) and p(3) are symmetric around 0.5.
    assert targets[1] == pytest.approx(0.0) and targets[2] == pytest.approx(0.0)
    assert targets[0] == pytest.approx(-targets[3]) and targets[0] < 0


def test_two_annotator_ecdf_probit_by_hand() -> None:
    # a: p(1) = 1/8, p(2) = 1/2, p(3) = 7/8   (N = 4)
    # b: p(3) = 1/3 - 1/6 = 1/6, p(4) = 2/3 - 1/6 = 1/2, p(5) = 1 - 1/6 = 5/6   (N = 3)
    # item 1: (1/8 + 5/6) / 2 = 23/48; item 2: (1/2 + 1/6) / 2 = 1/3; item 3: (1/2 + 1/2) / 2 = 1/2;
    # item 4: only a rated it: 7/8.
    expected = norm.ppf([23 / 48, 1 / 3, 1 / 2, 7 / 8])
    np.testing.assert_allclose(normalize_ratings(TWO_ANNOTATORS), expected, rtol=1e-12)


def test_ecdf_probit_clips_to_eps() -> None:
    items = [{"a": 1}] + [{"a": 2}] * 999  # p(1) = 1/1000 - 1/2000 = 0.0005 < eps
    targets = normalize_ratings(items, eps=1e-3)
    assert targets[0] == pytest.approx(norm.ppf(1e-3))
    assert math.isfinite(normalize_ratings(items, eps=1e-6)[0]) and normalize_ratings(items, eps=1e-6)[0] < targets[0]


def test_zscore_by_hand() -> None:
    # a: mean 2, population std sqrt(2/4) -> z(1) = -sqrt(2), z(2) = 0, z(3) = sqrt(2)
    # b: mean 4, population std sqrt(2/3) -> z(5) = sqrt(1.5), z(3) = -sqrt(1.5), z(4) = 0
    expected = [(-math.sqrt(2) + math.sqrt(1.5)) / 2, -math.sqrt(1.5) / 2, 0.0, math.sqrt(2)]
    np.testing.assert_allclose(normalize_ratings(TWO_ANNOTATORS, method="zscore"), expected, atol=1e-12)


def test_zscore_constant_annotator_gives_zero() -> None:
    assert normalize_ratings([{"a": 4}, {"a": 4}], method="zscore").tolist() == [0.0, 0.0]


def test_raw_is_the_mean_rating() -> None:
    assert normalize_ratings(TWO_ANNOTATORS, method="raw").tolist() == [3.0, 2.5, 3.0, 3.0]


def test_unknown_method_and_unrated_item_are_rejected() -> None:
    with pytest.raises(ValueError, match="unknown score normalization 'minmax'"):
        normalize_ratings(TWO_ANNOTATORS, method="minmax")
    with pytest.raises(ValueError, match="item 1 has no annotator ratings"):
        normalize_ratings([{"a": 1}, {}])


def make_record(pair: str, ratings: dict | None, critique: str | None = None, mos=(9.0, 9.0, 9.0)) -> EditRecord:
    return EditRecord(pair_id=pair, source_id="s", source_image=Path("/s.png"), edited_image=Path(f"/{pair}.png"),
                      instruction="edit", mos=mos, critique=critique, critique_id=critique, ratings=ratings)


def mos_ratings(item: dict) -> dict:
    """The same per-annotator ratings on all three MOS dims, doubled on the second one."""
    return {MOS_DIMS[0]: item, MOS_DIMS[1]: {a: 2 * r for a, r in item.items()}, MOS_DIMS[2]: item}


def test_normalize_records_fills_mos() -> None:
    records = [make_record(f"p{i}", mos_ratings(item)) for i, item in enumerate(TWO_ANNOTATORS)]
    out = normalize_records(records)
    expected = norm.ppf([23 / 48, 1 / 3, 1 / 2, 7 / 8])
    # Doubling every rating keeps each annotator's percentiles, so all three dims agree.
    for record, value in zip(out, expected, strict=True):
        assert record.mos == pytest.approx((value, value, value))
    raw = normalize_records(records, method="raw")
    assert raw[0].mos == pytest.approx((3.0, 6.0, 3.0))


def test_normalize_records_fills_critique_scores_and_keeps_mos() -> None:
    ratings = [{CRITIQUE_DIMS[0]: item, CRITIQUE_DIMS[1]: item, CRITIQUE_DIMS[2]: {"z": 1}} for item in TWO_ANNOTATORS]
    records = [make_record("p", r, critique=f"c{i}") for i, r in enumerate(ratings)]
    out = normalize_records(records, method="raw")
    assert [r.critique_scores for r in out] == [(3.0, 3.0, 1.0), (2.5, 2.5, 1.0), (3.0, 3.0, 1.0), (3.0, 3.0, 1.0)]
    assert all(r.mos == (9.0, 9.0, 9.0) for r in out)


def test_record_without_all_three_dims_is_left_alone() -> None:
    partial = make_record("q", {MOS_DIMS[0]: {"a": 1}, MOS_DIMS[1]: {"a": 1}})
    unrated = make_record("r", None)
    out = normalize_records([make_record("p", mos_ratings({"a": 2})), partial, unrated])
    assert out[1] == partial and out[2] == unrated and out[0].mos != (9.0, 9.0, 9.0)


def test_mos_ratings_count_once_per_pair_not_per_critique() -> None:
    # Annotator a rates pairs P, Q, R as 1, 2, 3; P has three critique records carrying the
    # same MOS ratings. Per pair: p(1) = 1/3 - 1/6 = 1/6. Counting P three times would give
    # a's ratings [1, 1, 1, 2, 3] and p(1) = 3/5 - 3/10 = 0.3 instead.
    records = [make_record("P", mos_ratings({"a": 1}), critique=f"c{i}") for i in range(3)]
    records += [make_record("Q", mos_ratings({"a": 2})), make_record("R", mos_ratings({"a": 3}))]
    out = normalize_records(records)
    for record in out[:3]:
        assert record.mos == pytest.approx((norm.ppf(1 / 6),) * 3)
    assert out[3].mos == pytest.approx((0.0, 0.0, 0.0))


def test_conflicting_mos_ratings_for_one_pair_are_rejected() -> None:
    records = [make_record("P", mos_ratings({"a": 1}), critique="c0"),
               make_record("P", mos_ratings({"a": 2}), critique="c1")]
    with pytest.raises(ValueError, match="'P' carry different ratings"):
        normalize_records(records)

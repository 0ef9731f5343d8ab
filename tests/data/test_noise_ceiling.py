"""The benchmark's noise ceiling: SRCC of construction truth vs annotated target, checked with scipy."""

from __future__ import annotations

import json

import numpy as np
from scipy.stats import spearmanr

from ie_eval.cli import main as ie_eval_main
from ie_eval.data.readers import read_manifests
from ie_eval.data.records import ALL_DIMS, CRITIQUE_DIMS, MOS_DIMS
from ie_eval.data.synth.ceiling import ceiling_of_records, read_noise_ceiling


def test_synth_stores_the_ceiling_per_dimension_and_it_equals_scipy(synth_manifest) -> None:
    ceiling = read_noise_ceiling(synth_manifest)
    assert set(ceiling) == set(ALL_DIMS)
    pairs = [json.loads(line) for line in (synth_manifest.parent / "pairs.jsonl").read_text().splitlines()]
    truth = np.asarray([p["meta"]["truth_mos"] for p in pairs])
    target = np.asarray([p["mos"] for p in pairs])
    for d, dim in enumerate(MOS_DIMS):
        assert abs(ceiling[dim] - spearmanr(truth[:, d], target[:, d]).statistic) < 1e-4
    rows = [json.loads(line) for line in synth_manifest.read_text().splitlines()]
    truth = np.asarray([r["meta"]["truth_critique"] for r in rows])
    target = np.asarray([r["critique_scores"] for r in rows])
    for d, dim in enumerate(CRITIQUE_DIMS):
        assert abs(ceiling[dim] - spearmanr(truth[:, d], target[:, d]).statistic) < 1e-4
    assert all(0.5 < value < 1.0 for value in ceiling.values())  # noisy annotators: high, never perfect


def test_ceiling_of_a_split_uses_one_row_per_pair_for_mos(synth_manifest) -> None:
    records = read_manifests([synth_manifest]).records
    mos = ceiling_of_records(records, "mos")
    critique = ceiling_of_records(records, "critique_scores")
    stored = read_noise_ceiling(synth_manifest)
    assert all(abs(mos[d] - stored[d]) < 1e-4 for d in MOS_DIMS)
    assert all(abs(critique[d] - stored[d]) < 1e-4 for d in CRITIQUE_DIMS)


def test_records_without_construction_truth_have_no_ceiling(edit_record_factory, tmp_path) -> None:
    records = [edit_record_factory(f"p{i}", mos=(0.1 * i, 0.2, 0.3)) for i in range(4)]
    assert ceiling_of_records(records, "mos") == {}
    assert read_noise_ceiling(tmp_path / "manifest.jsonl") == {}


def test_data_synth_prints_the_ceiling(tmp_path, capsys) -> None:
    assert ie_eval_main(["data", "synth", "--out", str(tmp_path), "--n-sources", "8", "--image-size", "48"]) == 0
    assert "noise ceiling" in capsys.readouterr().out

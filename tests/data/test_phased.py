"""Critic SFT data: best-critique targets in the fixed structure, score-only pool, phased schedule."""

import pytest

from ie_eval.data.critique_format import parse_critique
from ie_eval.data.phased import (
    PhasedDataModule,
    best_critique_per_pair,
    build_phases,
    structured_critique,
)
from ie_eval.data.readers import read_manifest

PHASES = [
    {"name": "warmup", "epochs": [1, 1], "pools": ["score_cot"]},
    {"name": "mixed", "epochs": [2, 3], "pools": ["score_cot", "score_only"]},
    {"name": "refresh", "epochs": [4, 4], "pools": ["score_cot"], "losses": ["ce", "huber"]},
]


def data_module(manifest, **overrides):
    kwargs = dict(score_only_manifest=str(manifest.parent / "pairs.jsonl"), phases=PHASES, batch_size=8)
    return PhasedDataModule(str(manifest), **(kwargs | overrides))


def test_best_critique_per_pair_has_the_highest_mean_critique_score(synth_manifest):
    records = read_manifest(synth_manifest).records
    best = best_critique_per_pair(records)
    assert len(best) == len({r.pair_id for r in records})
    for chosen in best:
        rivals = [r for r in records if r.pair_id == chosen.pair_id]
        assert sum(chosen.critique_scores) == max(sum(r.critique_scores) for r in rivals)


def test_structured_targets_keep_the_claims_and_the_final_scores(synth_manifest):
    for record in read_manifest(synth_manifest).records[:40]:
        target = parse_critique(structured_critique(record))
        assert target.structured
        assert target.scores == parse_critique(record.critique).scores
        for claim in record.meta["claims"]:
            assert claim["text"][1:] in " ".join(target.observations.values())


def test_pools_are_split_by_source_and_score_only_rows_have_no_critique(synth_manifest):
    data = data_module(synth_manifest)
    data.setup("fit")
    cot, only = data.pools["score_cot"], data.pools["score_only"]
    for split in ("train", "val", "test"):
        assert {r.source_id for r in cot[split]} == {r.source_id for r in only[split]}
        assert all(r.critique is not None for r in cot[split]) and all(r.critique is None for r in only[split])
        assert len({r.pair_id for r in cot[split]}) == len(cot[split])  # one target per pair
    assert not {r.source_id for r in only["train"]} & {r.source_id for r in cot["test"]}


def test_phase_at_follows_the_configured_epochs(synth_manifest):
    data = data_module(synth_manifest)
    assert [data.phase_at(e).name for e in range(4)] == ["warmup", "mixed", "mixed", "refresh"]
    with pytest.raises(ValueError, match="epoch 5 is not covered"):
        data.phase_at(4)


def test_phases_must_be_contiguous_from_epoch_one_and_name_known_pools():
    with pytest.raises(ValueError, match="contiguous"):
        build_phases([{"name": "a", "epochs": [1, 1]}, {"name": "b", "epochs": [3, 4]}])
    with pytest.raises(ValueError, match="pools"):
        build_phases([{"name": "a", "epochs": [1, 2], "pools": ["extra"]}])
    with pytest.raises(ValueError, match="unknown loss term"):
        build_phases([{"name": "a", "epochs": [1, 2], "losses": ["ce", "rank"]}])


def test_a_score_only_phase_needs_a_score_only_manifest(synth_manifest):
    with pytest.raises(ValueError, match="score_only_manifest"):
        PhasedDataModule(str(synth_manifest), phases=PHASES)

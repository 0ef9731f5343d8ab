"""`ie-eval score` writes one row per manifest row, equal to the model's own forward pass."""

import json

import pytest
import torch

from ie_eval.cli import main as cli_main
from ie_eval.data.collate import EditCollator
from ie_eval.data.readers import read_manifest
from ie_eval.models.heads import HeadConfig
from ie_eval.models.reward_model import RewardModel


def test_score_cli_matches_forward_pass_in_manifest_order(synth_manifest, tmp_path):
    model = RewardModel.build("tiny-qwen3-vl", head=HeadConfig(hidden_size=16, dropout=0.0)).eval()
    model.save_pretrained(tmp_path / "rm")
    records = read_manifest(synth_manifest).records[:10]
    manifest = tmp_path / "m.jsonl"
    from ie_eval.data.writers import write_manifest

    write_manifest(records, manifest)
    out = tmp_path / "scores.jsonl"
    assert cli_main(["score", "--ckpt", str(tmp_path / "rm"), "--manifest", str(manifest), "--out", str(out),
                     "--batch-size", "3", "--max-pixels", "4096"]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["sample_id"] for r in rows] == [r.sample_id for r in records]
    batch = EditCollator(model.processor, task="reward", mode="score", max_pixels=4096)(records)
    with torch.no_grad():
        expected = model(batch)
    got = torch.tensor([[r["logicality"], r["accuracy"], r["usefulness"]] for r in rows])
    assert torch.allclose(got, expected, atol=1e-5)
    weights = torch.tensor([0.3, 0.4, 0.3])  # the default (ReasonEdit public code)
    assert [r["reward"] for r in rows] == pytest.approx((expected @ weights).tolist(), abs=1e-5)

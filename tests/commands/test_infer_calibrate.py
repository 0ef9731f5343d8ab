"""The public ReasonEdit interface: `ie-eval infer` on its CSV layout and `ie-eval calibrate`."""

import csv
import json

import numpy as np
import pytest
import torch
from scipy import stats

from ie_eval.cli import main as cli_main
from ie_eval.data.collate import EditCollator
from ie_eval.data.records import EditRecord
from ie_eval.models.calibration import CALIBRATION_NAME, AffineCalibration, fit_affine
from ie_eval.models.critic import CriticModel
from ie_eval.models.heads import HeadConfig


@pytest.fixture(scope="module")
def critic_dir(tmp_path_factory):
    torch.manual_seed(0)
    model = CriticModel.build("tiny-qwen3-vl", head=HeadConfig(hidden_size=16, dropout=0.0))
    model.input_budget = {"max_pixels": 4096, "min_pixels": 1024, "max_length": 2048}
    return model.save_pretrained(tmp_path_factory.mktemp("infer") / "critic")


def write_edits(tmp_path, image_pair_factory, rows=2):
    path = tmp_path / "edits.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["source", "edited", "instruction"])
        for index in range(rows):
            source, edited = image_pair_factory(name=f"p{index}")
            writer.writerow([source.relative_to(tmp_path) if source.is_relative_to(tmp_path) else source,
                             edited, f"make the circle {['blue', 'red'][index % 2]}"])
    return path


def read_rows(path):
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_infer_round_trips_the_public_csv_layout_with_head_scores(tmp_path, image_pair_factory, critic_dir):
    edits = write_edits(tmp_path, image_pair_factory)
    for mode in ("score_only", "cot"):
        out = tmp_path / f"{mode}.csv"
        assert cli_main(["infer", "--ckpt", str(critic_dir), "--csv", str(edits), "--out", str(out), "--mode", mode,
                         "--max-new-tokens", "4"]) == 0
        rows = read_rows(out)
        assert list(rows[0]) == ["source", "edited", "instruction", "v_score", "e_score", "p_score", "cot_text"]
        assert [r["instruction"] for r in rows] == [r["instruction"] for r in read_rows(edits)]
        if mode == "score_only":
            assert all(r["cot_text"] == "" for r in rows)  # no generation in score-only mode
    model = CriticModel.from_pretrained(critic_dir)
    source = tmp_path / read_rows(edits)[0]["source"]
    record = EditRecord(pair_id="x", source_id="x", source_image=source, edited_image=read_rows(edits)[0]["edited"],
                        instruction="make the circle blue")
    with torch.no_grad():
        expected = model(EditCollator(model.processor, task="critic", mode="score", max_pixels=4096)([record]))[0]
    got = [float(read_rows(tmp_path / "score_only.csv")[0][c]) for c in ("v_score", "e_score", "p_score")]
    assert got == pytest.approx(expected.tolist(), abs=1e-4)


def test_infer_names_the_row_and_field_of_a_missing_image(tmp_path, image_pair_factory, critic_dir):
    edits = write_edits(tmp_path, image_pair_factory)
    rows = read_rows(edits)
    rows[1]["edited"] = "gone.png"
    with edits.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["source", "edited", "instruction"])
        writer.writeheader()
        writer.writerows(rows)
    with pytest.raises(SystemExit, match=r"edits\.csv:2: field 'edited': image not found"):
        cli_main(["infer", "--ckpt", str(critic_dir), "--csv", str(edits), "--out", str(tmp_path / "o.csv")])


def test_affine_calibration_lowers_mse_keeps_srcc_and_uses_reasonedits_format(tmp_path):
    rng = np.random.default_rng(0)
    raw = rng.normal(0.0, 0.05, size=(40, 3))  # a squashed head: the right order, the wrong scale
    target = np.clip(0.5 + 4 * raw + rng.normal(0, 0.02, size=raw.shape), 0.01, 0.99)
    calibration = fit_affine(("a", "b", "c"), raw, target)
    calibrated = np.asarray(calibration.apply(("a", "b", "c"), raw.tolist()))
    for d in range(3):
        assert np.mean((calibrated[:, d] - target[:, d]) ** 2) < np.mean((np.clip(raw[:, d], 0, 1) - target[:, d]) ** 2)
        assert stats.spearmanr(calibrated[:, d], target[:, d])[0] == pytest.approx(stats.spearmanr(raw[:, d], target[:, d])[0])
    path = calibration.save(tmp_path)
    data = json.loads(path.read_text())
    assert data["calibration_type"] == "affine_per_dimension" and set(data["coefficients"]["a"]) == {"slope", "intercept"}
    assert AffineCalibration.load(tmp_path).coefficients == calibration.coefficients
    data["coefficients"]["a"]["slope"] = "steep"
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="coefficients.a needs numeric slope"):
        AffineCalibration.load(tmp_path)


def test_calibrate_writes_the_export_calibration_that_infer_applies(tmp_path, synth_manifest, image_pair_factory,
                                                                    critic_dir, capsys):
    import shutil

    critic = tmp_path / "critic"
    shutil.copytree(critic_dir, critic)
    assert cli_main(["calibrate", "--ckpt", str(critic), "--manifest", str(synth_manifest.parent / "pairs.jsonl"),
                     "--split", "val", "--batch-size", "8"]) == 0
    report = json.loads((critic / CALIBRATION_NAME).read_text())["metadata"]["validation"]
    for dim, row in report.items():
        assert row["mse_calibrated"] <= row["mse_raw"] + 1e-12, dim
    edits = write_edits(tmp_path, image_pair_factory)
    out = tmp_path / "calibrated.csv"
    assert cli_main(["infer", "--ckpt", str(critic), "--csv", str(edits), "--out", str(out), "--mode", "score_only"]) == 0
    assert all(0.0 <= float(r[c]) <= 1.0 for r in read_rows(out) for c in ("v_score", "e_score", "p_score"))
    assert "calibrated" in capsys.readouterr().out

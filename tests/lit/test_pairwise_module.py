"""PairwiseRewardModule (EditReward's objective) with a real Lightning Trainer on the tiny synthetic set."""

import math

import lightning as L
import pytest
import torch

from ie_eval.data.pairwise import PairwiseDataModule
from ie_eval.eval.benchmarks import load_benchmark
from ie_eval.eval.evaluate import evaluate
from ie_eval.eval.scorers import ScorerOptions, build_scorer
from ie_eval.lit.callbacks import ExportPretrained
from ie_eval.lit.pairwise_module import PairwiseRewardModule
from ie_eval.metrics.pairwise import PairwiseMetrics
from ie_eval.models.pairwise_model import PairwiseRewardModel


def tiny_module(**overrides):
    kwargs = dict(backbone="tiny-qwen3-vl", adapter={"kind": "full"}, head={"hidden_size": 32, "dropout": 0.0},
                  optim={"lr": 1e-3, "head_lr": 1e-3}, loss={"mc_samples": 64})
    return PairwiseRewardModule(**(kwargs | overrides))


def tiny_data(manifest, **overrides):
    kwargs = dict(sources=[f"synth:{manifest.parent}"], batch_size=4, eval_batch_size=8, max_pixels=64 * 64,
                  min_pixels=32 * 32, split_ratios={"train": 0.6, "val": 0.2, "test": 0.2})
    return PairwiseDataModule(**(kwargs | overrides))


def test_fit_logs_pairwise_metrics_and_exports_a_model_that_reloads(tmp_path, synth_manifest):
    torch.manual_seed(0)
    module, data = tiny_module(), tiny_data(synth_manifest)
    export = ExportPretrained(str(tmp_path / "export"))
    trainer = L.Trainer(accelerator="cpu", max_epochs=1, logger=False, enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=tmp_path, num_sanity_val_steps=0,
                        limit_train_batches=3, callbacks=[export], enable_checkpointing=False)
    trainer.fit(module, datamodule=data)
    metrics = trainer.callback_metrics
    assert 0.0 <= float(metrics["val/pair_accuracy"]) <= 1.0 and math.isfinite(float(metrics["val/loss"]))
    assert float(metrics["val/pair_sigma"]) > 0 and "val/sigma_small_gap" in metrics
    assert module.model.input_budget == {"max_pixels": 64 * 64, "min_pixels": 32 * 32, "max_length": data.hparams.max_length}

    loaded = PairwiseRewardModel.from_pretrained(tmp_path / "export")
    assert loaded.fusion == "mean" and loaded.dims == module.model.dims
    batch = next(iter(data.test_dataloader()))
    module.model.eval()
    with torch.no_grad():
        for got, expected in zip(loaded.fused(batch), module.model.fused(batch), strict=True):
            assert torch.allclose(got, expected, atol=1e-5)

    scorer = build_scorer(f"pairwise-rm:{tmp_path / 'export'}", ScorerOptions(batch_size=4))
    bench = load_benchmark(f"synth:{synth_manifest.parent}", split="test")
    results, _ = evaluate(scorer, bench, n_resamples=10)
    assert results["preference"]["n_groups"] == len(bench.groups) > 0
    assert set(results["preference"]["per_dim"]) == set(module.model.dims)


def test_one_pass_per_edit_gives_each_pair_its_two_fused_scores(synth_manifest):
    module, data = tiny_module(fusion="sum"), tiny_data(synth_manifest)
    data.setup()
    data.trainer = L.Trainer(accelerator="cpu", logger=False)
    data.trainer.strategy.connect(module)
    batch = next(iter(data.val_dataloader()))
    module.eval()
    with torch.no_grad():
        mu, log_sigma = module.pair_scores(batch)
        pairs = batch["pair_label"].shape[0]
        per_dim_mu, per_dim_ls = module.model(batch)
    assert mu.shape == (pairs, 2)
    assert torch.allclose(mu[:, 0], per_dim_mu[:pairs].sum(dim=1))  # sum fusion: mus added
    assert torch.allclose(mu[:, 1], per_dim_mu[pairs:].sum(dim=1))
    assert torch.allclose(log_sigma[:, 1].exp() ** 2, per_dim_ls[pairs:].exp().pow(2).sum(dim=1), rtol=1e-4)


def test_pairwise_metrics_match_a_hand_count():
    metric = PairwiseMetrics()
    mu = torch.tensor([[2.0, 1.0], [0.0, 1.0], [1.0, 1.0], [3.0, 0.0], [0.0, 5.0]])
    log_sigma = torch.log(torch.tensor([[3.0, 4.0], [1.0, 1.0], [1.0, 1.0], [0.6, 0.8], [9.0, 9.0]]))
    label = torch.tensor([1.0, 1.0, 0.0, 0.0, 0.5])  # correct, wrong, tie in mu (half), wrong; the last a tie
    gap = torch.tensor([0.1, 0.4, 0.2, 0.3, 0.0])
    metric.update(mu, log_sigma, label, gap)
    out = metric.compute()
    assert out["pair_accuracy"].item() == pytest.approx((1 + 0 + 0.5 + 0) / 4)
    sigmas = [5.0, math.sqrt(2), math.sqrt(2), 1.0]  # sqrt(sigma_A^2 + sigma_B^2)
    assert out["pair_sigma"].item() == pytest.approx(sum(sigmas) / 4)
    assert out["sigma_small_gap"].item() == pytest.approx((5.0 + math.sqrt(2)) / 2)  # gaps 0.1, 0.2
    assert out["sigma_large_gap"].item() == pytest.approx((1.0 + math.sqrt(2)) / 2)  # gaps 0.3, 0.4


def test_adalora_is_refused_with_the_reason():
    with pytest.raises(ValueError, match="not adalora"):
        tiny_module(adapter={"kind": "adalora"})

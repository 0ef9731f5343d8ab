"""Two GRPO ranks (gloo DDP) x 2 prompts per step train what one process x 4 prompts trains: the same prompts
per step, split disjointly and evenly, the same rollouts (per-prompt seeded sampling), the same logged metrics
(reduced over the ranks) and the same final weights.

Equal up to float reassociation needs: `sampling.seed` (a prompt's samples not depending on its rank),
`aggregation: sequence` (a mean of equal-sized rank means is the global mean; "token" weighs ranks by their
token counts) and no dropout in the policy (dropout masks follow each rank's generator).

The policy is tiny Qwen3-VL: every weight tensor's difference is under 1e-3 of its update (measured 1.1e-4).
Tiny Qwen3.5 measured 0.9% on its linear-attention decay (A_log, dt_bias): the chunked gated-delta
kernel's chunks fall at other token positions when the batch pads prompts to another length."""

from __future__ import annotations

import pytest
import torch
from grpo_ddp_helpers import run, step_metrics, steps

STEPS = 2
COMPARED = ("train/loss", "train/reward_mean", "train/aux_huber", "train/response_length_max")


@pytest.fixture(scope="module")
def dropout_free_critic_dir(tmp_path_factory):
    from ie_eval.models.adapters import AdapterConfig
    from ie_eval.models.critic import CriticModel
    from ie_eval.models.heads import HeadConfig

    torch.manual_seed(0)
    model = CriticModel.build("tiny-qwen3-vl", {"dtype": "float32", "seed": 0},
                              head=HeadConfig(hidden_size=16, dropout=0.0))
    model.attach_adapter(AdapterConfig(kind="full"))
    assert not any(isinstance(m, torch.nn.Dropout) and m.p > 0 for m in model.modules())
    return model.save_pretrained(tmp_path_factory.mktemp("grpo-ddp") / "sft")


def test_two_grpo_ranks_train_what_one_process_trains_on_the_same_global_batch(
    tmp_path, synth_manifest, dropout_free_critic_dir, tiny_reward_dir
):
    common = {"SAMPLING_SEED": "11", "AGGREGATION": "sequence", "STEPS": str(STEPS)}
    one, two = tmp_path / "one", tmp_path / "two"
    run(one, dropout_free_critic_dir, tiny_reward_dir, synth_manifest,
        env={**common, "DEVICES": "1", "PROMPTS_PER_STEP": "4"})
    run(two, dropout_free_critic_dir, tiny_reward_dir, synth_manifest,
        env={**common, "DEVICES": "2", "PROMPTS_PER_STEP": "2"})
    single, ranks = steps(one, 0), [steps(two, rank) for rank in (0, 1)]
    assert [entry["step"] for entry in single] == list(range(STEPS))
    for step, alone in enumerate(single):
        first, second = (ranks[rank][step]["prompts"] for rank in (0, 1))
        assert len(first) == len(second) == 2 and not set(first) & set(second)
        assert sorted(first + second) == sorted(alone["prompts"])
    logged = step_metrics(one, 0)
    for rank in (0, 1):
        for alone, synced in zip(logged, step_metrics(two, rank), strict=True):
            for name in COMPARED:
                assert synced[name] == pytest.approx(alone[name], rel=1e-4, abs=1e-5), (rank, alone["ended"], name)
    reference = torch.load(one / "rank0.pt", weights_only=True)
    initial = initial_weights(dropout_free_critic_dir)
    updates = {k: (reference[k].float() - start).norm() for k, start in initial.items() if k in reference}
    assert max(updates.values()) > 1e-3  # trained
    for rank in (0, 1):
        weights = torch.load(two / f"rank{rank}.pt", weights_only=True)
        assert weights.keys() == reference.keys()
        relative = {k: float((weights[k].float() - reference[k].float()).norm() / updates[k].clamp(min=1e-12))
                    for k in updates if updates[k] > 0}
        worst = max(relative, key=relative.get)
        assert relative[worst] < 1e-3, (worst, relative[worst])
        for name in set(reference) - set(updates):
            assert torch.equal(weights[name], reference[name]), name


def initial_weights(directory) -> dict[str, torch.Tensor]:
    from ie_eval.models.critic import CriticModel

    return {k: v.detach().float() for k, v in CriticModel.from_pretrained(directory).state_dict().items()}

"""CriticModel: one pass gives head scores + critique logits; save/load reproduces scores and greedy text."""

from pathlib import Path

import pytest
import torch
import yaml

from ie_eval.data.collate import EditCollator, model_inputs
from ie_eval.data.phased import sft_targets
from ie_eval.data.readers import read_manifest
from ie_eval.models.adapters import AdapterConfig
from ie_eval.models.critic import PAPER_LORA_MODULES, CriticModel

REPO = Path(__file__).resolve().parents[2]
PIXELS = dict(max_pixels=64 * 64, min_pixels=32 * 32)


@pytest.fixture(scope="module")
def records(synth_manifest):
    return sft_targets(read_manifest(synth_manifest).records, "best", "structured")[:3]


def collate(model, records, mode):
    return EditCollator(model.processor, task="critic", mode=mode, **PIXELS)(records)


def test_sft_forward_logits_are_the_lm_heads_at_the_critique_positions(records):
    model = CriticModel.build("tiny-qwen3-vl").eval()
    batch = collate(model, records, "train")
    with torch.no_grad():
        outputs = model.sft_forward(batch)
        full = model.backbone(**model_inputs(batch)).logits  # (B, T, V)
    rows, cols = (batch["labels"][:, 1:] != -100).nonzero(as_tuple=True)
    assert outputs.token_targets.tolist() == batch["labels"][rows, cols + 1].tolist()
    torch.testing.assert_close(outputs.token_logits, full[rows, cols], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("adapter", ["full", "lora"])
def test_chunked_critique_ce_gives_the_plain_loss_and_gradients(records, adapter):
    from ie_eval.losses.linear_ce import HeadInputs
    from ie_eval.losses.sft import SFTLossConfig, sft_loss

    torch.manual_seed(0)
    model = CriticModel.build("tiny-qwen3-vl")
    model.attach_adapter(AdapterConfig(kind=adapter, r=4, alpha=8))
    model.eval()  # no dropout: the two passes see the same network
    batch = collate(model, records, "train")
    results = []
    for chunk in (None, 7):
        model.zero_grad(set_to_none=True)
        outputs = model.sft_forward(batch)
        predictions = outputs.token_predictions(chunk)
        assert isinstance(predictions, HeadInputs) == (chunk is not None)
        parts = sft_loss(predictions, outputs.token_targets, outputs.scores, batch["mos"], batch["mos_mask"],
                         SFTLossConfig(ce_chunk_tokens=chunk))
        parts["loss"].backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        results.append((parts["ce"].detach(), grads))
    (plain_ce, plain_grads), (chunked_ce, chunked_grads) = results
    torch.testing.assert_close(chunked_ce, plain_ce, rtol=1e-5, atol=1e-6)
    assert plain_grads.keys() == chunked_grads.keys()
    assert any("lm_head" in n for n in plain_grads) == (adapter == "full")  # LoRA leaves the head frozen
    for name, grad in plain_grads.items():
        torch.testing.assert_close(chunked_grads[name], grad, rtol=1e-4, atol=1e-6, msg=name)


def test_head_reads_the_prompt_so_training_score_only_and_generation_batches_agree(records):
    model = CriticModel.build("tiny-qwen3-vl").eval()
    with torch.no_grad():
        train = model.sft_forward(collate(model, records, "train")).scores
        score_only = model(collate(model, records, "score"))
        left_padded = model(collate(model, records, "generate"))
    torch.testing.assert_close(train, score_only, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(left_padded, score_only, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    "adapter",
    [AdapterConfig(kind="full"), AdapterConfig(kind="lora", r=4, alpha=8, include_vision=True)],
    ids=["full", "lora-with-vision"],
)
def test_saved_critic_reloads_with_identical_scores_and_greedy_text(records, adapter, tmp_path):
    torch.manual_seed(0)
    model = CriticModel.build("tiny-qwen3.5", adapter=adapter)
    model.attach_adapter(adapter)
    with torch.no_grad():  # move every trainable weight off its init so the round trip has something to prove
        for name, parameter in model.named_parameters():
            if parameter.requires_grad and ("lora_B" in name or adapter.kind == "full"):
                parameter.add_(0.05 * torch.randn_like(parameter))
    model.eval().save_pretrained(tmp_path / "critic")
    reloaded = CriticModel.from_pretrained(tmp_path / "critic")
    batch = collate(model, records, "generate")
    before, after = model.critique(batch, max_new_tokens=12), reloaded.critique(batch, max_new_tokens=12)
    assert torch.equal(before.scores, after.scores)
    assert before.texts == after.texts and any(before.texts)


def test_critic_pooling_must_read_the_prompt():
    with pytest.raises(ValueError, match="critic pooling 'marker'"):
        CriticModel.build("tiny-qwen3-vl", pooling="marker")


def test_paper_config_puts_lora_on_every_table_9_module():
    config = yaml.safe_load((REPO / "configs/sft/qwen3.5-9b.yaml").read_text())
    adapter = dict(config["model"]["init_args"]["adapter"], kind="lora")  # qlora itself needs CUDA
    model = CriticModel.build("tiny-qwen3.5")
    model.attach_adapter(AdapterConfig(**adapter))
    wrapped = {name.split(".lora_A")[0] for name, _ in model.backbone.named_parameters() if ".lora_A" in name}
    covered = {module for module in PAPER_LORA_MODULES if any(name.endswith("." + module) for name in wrapped)}
    assert covered == set(PAPER_LORA_MODULES)


def test_export_records_the_critique_format_and_old_exports_read_as_sections(tmp_path):
    import json

    model = CriticModel.build("tiny-qwen3-vl", critique_format="think_answer", adapter=AdapterConfig(kind="full"))
    model.attach_adapter(AdapterConfig(kind="full"))
    model.eval().save_pretrained(tmp_path / "critic")
    reloaded = CriticModel.from_pretrained(tmp_path / "critic")
    assert reloaded.critique_format == "think_answer"
    assert reloaded.parse("<think>a</think><answer>3.5</answer>").overall == 3.5
    config_path = tmp_path / "critic" / "critic_config.json"
    config = json.loads(config_path.read_text())
    del config["critique_format"]
    config_path.write_text(json.dumps(config))
    assert CriticModel.from_pretrained(tmp_path / "critic").critique_format == "sections"
    with pytest.raises(ValueError, match="critique_format"):
        CriticModel.build("tiny-qwen3-vl", critique_format="json")


def test_the_critic_keeps_training_its_lm_head():
    model = CriticModel.build("tiny-qwen3.5", adapter=AdapterConfig(kind="full"))
    model.attach_adapter(AdapterConfig(kind="full"))
    assert model.backbone.get_output_embeddings().weight.requires_grad  # CE trains it (unlike RE-Reward's)

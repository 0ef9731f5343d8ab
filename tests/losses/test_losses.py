"""Loss pieces against values computed by hand."""

import math

import pytest
import torch

from ie_eval.losses.composite import RewardLoss, RewardLossConfig
from ie_eval.losses.correlation import plcc_loss
from ie_eval.losses.queue import ScoreQueue
from ie_eval.losses.ranking import margin_rank_loss
from ie_eval.losses.regression import huber_loss


def softplus(x: float) -> float:
    return math.log1p(math.exp(x))


def test_huber_matches_hand_values_in_both_regimes():
    pred = torch.tensor([[0.0, 3.0]])
    target = torch.tensor([[0.5, 0.0]])
    # |0.5| <= 1 -> 0.5 * 0.25 = 0.125 ; |3| > 1 -> 1 * (3 - 0.5) = 2.5 ; mean = 1.3125
    assert huber_loss(pred, target, delta=1.0).item() == pytest.approx(1.3125)


def test_huber_row_mask_skips_rows_and_empty_mask_gives_zero_with_grad():
    pred = torch.tensor([[0.0], [10.0]], requires_grad=True)
    target = torch.zeros(2, 1)
    assert huber_loss(pred, target, 1.0, torch.tensor([True, False])).item() == 0.0
    empty = huber_loss(pred, target, 1.0, torch.tensor([False, False]))
    empty.backward()
    assert empty.item() == 0.0 and pred.grad is not None


def test_rank_loss_in_batch_pairs_by_hand():
    pred = torch.tensor([[0.5], [0.2], [0.9]])
    target = torch.tensor([[1.0], [0.0], [1.02]])
    # (0,1): better=0, gap 0.3 -> sp(-0.2); (0,2): label gap 0.02 < 0.05 skipped; (1,2): better=2, gap 0.7 -> sp(-0.6)
    expected = (softplus(-0.2) + softplus(-0.6)) / 2
    got = margin_rank_loss(pred, target, margin=0.1, label_margin=0.05)
    assert got.item() == pytest.approx(expected, rel=1e-6)


def test_rank_loss_with_queue_by_hand():
    pred = torch.tensor([[0.5], [0.2], [0.9]])
    target = torch.tensor([[1.0], [0.0], [1.02]])
    queue_pred, queue_target = torch.tensor([[0.0]]), torch.tensor([[0.5]])
    # queue pairs: (0,q) sp(0.1-0.5); (1,q) q better: sp(0.1-(0.0-0.2)); (2,q) sp(0.1-0.9)
    terms = [softplus(-0.2), softplus(-0.6), softplus(-0.4), softplus(0.3), softplus(-0.8)]
    got = margin_rank_loss(pred, target, queue_pred, queue_target, margin=0.1, label_margin=0.05)
    assert got.item() == pytest.approx(sum(terms) / len(terms), rel=1e-6)


def test_rank_loss_gradient_flows_only_to_batch():
    pred = torch.tensor([[0.1], [0.4]], requires_grad=True)
    queue_pred = torch.tensor([[0.3]], requires_grad=True)
    loss = margin_rank_loss(pred, torch.tensor([[1.0], [0.0]]), queue_pred.detach(), torch.tensor([[0.5]]))
    loss.backward()
    assert pred.grad.abs().sum() > 0 and queue_pred.grad is None


def test_plcc_loss_is_zero_for_linear_and_two_for_anti():
    x = torch.linspace(0, 1, 8)[:, None]
    assert plcc_loss(3 * x + 1, x).item() == pytest.approx(0.0, abs=1e-6)
    assert plcc_loss(-x, x).item() == pytest.approx(2.0, abs=1e-6)


def test_plcc_loss_uses_queue_rows():
    pred, target = torch.tensor([[0.0], [1.0]]), torch.tensor([[0.0], [1.0]])
    assert plcc_loss(pred, target).item() == 0.0  # under 3 rows: no correlation
    queue_pred, queue_target = torch.tensor([[2.0], [3.0]]), torch.tensor([[3.0], [2.0]])
    x = torch.tensor([0.0, 1.0, 2.0, 3.0])
    y = torch.tensor([0.0, 1.0, 3.0, 2.0])
    r = torch.corrcoef(torch.stack([x, y]))[0, 1].item()
    assert plcc_loss(pred, target, queue_pred, queue_target).item() == pytest.approx(1 - r, abs=1e-6)


def test_queue_is_fifo_and_bounded():
    queue = ScoreQueue(max_size=3, num_dims=1)
    for value in range(5):
        queue.push(torch.tensor([[float(value)]]), torch.tensor([[10.0 + value]]))
    assert len(queue) == 3
    assert queue.pred.flatten().tolist() == [2.0, 3.0, 4.0]
    assert queue.target.flatten().tolist() == [12.0, 13.0, 14.0]


def test_queue_stores_detached_float32_and_follows_module_device():
    queue = ScoreQueue(4, 2)
    pred = torch.ones(2, 2, dtype=torch.float64, requires_grad=True)
    queue.push(pred, torch.zeros(2, 2))
    assert not queue.pred.requires_grad and queue.pred.dtype == torch.float32
    moved = queue.to("meta")
    assert moved.pred.device.type == "meta"


def test_queue_round_trips_through_state_dict_whatever_its_length():
    queue = ScoreQueue(4, 1)
    queue.push(torch.tensor([[1.0], [2.0]]), torch.tensor([[3.0], [4.0]]))
    fresh = ScoreQueue(4, 1)
    fresh.load_state_dict(queue.state_dict())
    assert fresh.pred.flatten().tolist() == [1.0, 2.0] and fresh.target.flatten().tolist() == [3.0, 4.0]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_queue_moves_to_batch_device_on_gpu():
    queue = ScoreQueue(4, 1)
    queue.push(torch.zeros(1, 1), torch.zeros(1, 1))
    queue.push(torch.ones(1, 1, device="cuda"), torch.ones(1, 1, device="cuda"))
    assert queue.pred.device.type == "cuda" and len(queue) == 2


def test_reward_loss_combines_weighted_parts_and_fills_queues_only_in_training():
    torch.manual_seed(0)
    loss_fn = RewardLoss(
        RewardLossConfig(huber_weight=1.0, rank_weight=0.5, plcc_weight=0.25, rank_queue_size=8, plcc_queue_size=8)
    )
    pred, target = torch.randn(4, 3), torch.randn(4, 3)
    out = loss_fn(pred, target)
    expected = out["huber"] + 0.5 * out["rank"] + 0.25 * out["plcc"]
    assert out["loss"].item() == pytest.approx(expected.item(), rel=1e-6)
    assert len(loss_fn.rank_queue) == 4 and len(loss_fn.plcc_queue) == 4
    loss_fn.eval()
    loss_fn(pred, target)
    assert len(loss_fn.rank_queue) == 4


def test_reward_loss_rejects_nan_targets_and_negative_weights():
    with pytest.raises(ValueError, match="NaN"):
        RewardLoss()(torch.zeros(2, 3), torch.tensor([[0.0, float("nan"), 0.0]] * 2))
    with pytest.raises(ValueError, match="rank_weight"):
        RewardLoss(RewardLossConfig(rank_weight=-1.0))

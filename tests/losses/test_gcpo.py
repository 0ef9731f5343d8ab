"""GCPO win-ratio rewards (Edit-R1) against hand-computed cases: ties, unparsed traces, N = 1."""

import math

import pytest
import torch

from ie_eval.losses.gcpo import win_ratio_rewards
from ie_eval.losses.grpo import group_advantages

NAN = math.nan


@pytest.mark.parametrize(("preferred", "rejected", "wins", "losses"), [
    ([3.0, 1.0], [2.0, 2.0], [1.0, 0.0], [0.5, 0.5]),  # each rejected trace stays under one preferred of two
    ([2.0, 2.0], [2.0, 2.0], [0.0, 0.0], [0.0, 0.0]),  # ties count as neither
    ([4.0], [1.0], [1.0], [1.0]),  # N = 1
    ([1.0], [4.0], [0.0], [0.0]),  # N = 1, the critic prefers the wrong edit
    ([NAN, 3.0], [2.0, NAN], [0.0, 0.5], [0.5, 0.0]),  # an unparsed trace wins nothing and is beaten by nothing
    ([5.0, 4.0, 1.0], [3.0, 2.0, 4.5], [1.0, 2 / 3, 0.0], [2 / 3, 2 / 3, 1 / 3]),
])
def test_win_ratios_match_hand_counts(preferred, rejected, wins, losses):
    r_w, r_l = win_ratio_rewards(torch.tensor([preferred]), torch.tensor([rejected]))
    assert r_w[0].tolist() == pytest.approx(wins) and r_l[0].tolist() == pytest.approx(losses)


def test_pairs_are_independent_and_advantages_are_centred_per_side_without_std():
    r_w, r_l = win_ratio_rewards(torch.tensor([[3.0, 1.0], [0.0, 0.0]]), torch.tensor([[2.0, 2.0], [1.0, 1.0]]))
    assert r_w.tolist() == [[1.0, 0.0], [0.0, 0.0]] and r_l.tolist() == [[0.5, 0.5], [0.0, 0.0]]
    advantages = group_advantages(torch.cat([r_w[0], r_l[0]]), group_size=2, scale_by_std=False)
    assert advantages.tolist() == [0.5, -0.5, 0.0, 0.0]


def test_shapes_are_checked():
    with pytest.raises(ValueError, match=r"\(P, N\)"):
        win_ratio_rewards(torch.zeros(3), torch.zeros(3))

"""Fingerprint computations on synthetic activations with a planted feature."""

from __future__ import annotations

import pytest
import torch

from interp.metrics import features as Fe

F_, D = 64, 16


def planted_shifts(plant: int, seed: int = 0, strength: float = 1.0):
    """Feature activations of base/teacher/control/student; ``plant`` rises in both the
    teacher (vs base) and the student (vs control), everything else is noise."""
    g = torch.Generator().manual_seed(seed)

    def acts(rise):
        a = torch.rand(500, F_, generator=g).relu()
        a[:, plant] += rise
        return a
    return acts(0.0), acts(strength), acts(0.0), acts(strength)


def test_planted_feature_ranks_first_and_shifts_correlate():
    base, teacher, control, student = planted_shifts(plant=17)
    t, s = Fe.mean_shift(teacher, base), Fe.mean_shift(student, control)
    assert Fe.shared_ranking(t, s)[0] == 17
    assert Fe.correlation(t, s) > 0.9
    # without a plant the two shift vectors are unrelated noise
    base, teacher, control, student = planted_shifts(plant=17, strength=0.0, seed=1)
    assert abs(Fe.correlation(Fe.mean_shift(teacher, base), Fe.mean_shift(student, control))) \
        < 0.4


def test_ranking_ignores_features_moved_in_opposite_directions():
    t = torch.zeros(5)
    s = torch.zeros(5)
    t[1], s[1] = 3.0, -3.0  # big but disagreeing
    t[2], s[2] = 0.5, 0.5
    assert Fe.shared_ranking(t, s)[0] == 2


def test_ablating_a_planted_feature_removes_its_effect_and_nothing_else():
    g = torch.Generator().manual_seed(0)
    W = torch.linalg.qr(torch.randn(D, D, generator=g))[0][:8]  # 8 orthonormal directions
    readout = W[3]  # a "trait logit" that reads feature 3's direction
    feats = torch.rand(20, 8, generator=g)
    x = feats @ W + 0.01 * torch.randn(20, D, generator=g)  # with an error term
    removed = Fe.ablate(x, feats, W, torch.tensor([3]))
    torch.testing.assert_close(removed @ readout, x @ readout - feats[:, 3])
    other = Fe.ablate(x, feats, W, torch.tensor([5]))
    torch.testing.assert_close(other @ readout, x @ readout, atol=1e-5, rtol=0)
    steered = Fe.steer(x, W, torch.tensor([3]), torch.tensor([2.0]))
    torch.testing.assert_close(steered @ readout, x @ readout + 2.0)


def test_linear_baseline_and_gain_arithmetic():
    d = torch.tensor([2.0, 0.0])
    assert Fe.projection(torch.tensor([1.0, 1.0]), d) == pytest.approx(
        {"coefficient": 0.5, "cosine": 2 ** -0.5})
    assert Fe.mean_shift(torch.ones(3, 2), torch.zeros(4, 2)).tolist() == [1.0, 1.0]
    assert Fe.gain_removed(edited=0.3, student=0.9, control=0.1) == pytest.approx(0.75)
    assert Fe.gain_removed(0.5, 0.5, 0.5) == 0.0


def test_answer_rate_and_position_classes():
    logits = torch.zeros(2, 4, 3)
    logits[0, 2, 1] = 10.0
    logits[1, 3, 1] = 10.0
    last = torch.tensor([2, 3])
    assert Fe.answer_rate(logits, last, 1) == pytest.approx(1.0, abs=1e-3)
    m = Fe.position_masks(torch.zeros(2, 4, dtype=torch.long), last)
    assert m["answer"].sum() == 2 and m["context"][0].tolist() == [True, True, False, False]


def test_captured_fraction():
    whole = torch.tensor([2.0, 0.0])
    assert Fe.captured(torch.tensor([1.0, 5.0]), whole) == pytest.approx(0.5)
    assert Fe.captured(whole, whole) == pytest.approx(1.0)


def test_set_projection_moves_only_along_the_direction():
    x = torch.tensor([[3.0, 4.0]])
    out = Fe.set_projection(x, torch.tensor([2.0, 0.0]), 1.0)
    assert out.tolist() == [[1.0, 4.0]]

"""Class gating and assignment against hand-computed values (IoU: tests/unit/test_boxes.py)."""

from __future__ import annotations

import numpy as np
import pytest

from vigil.track.matching import (
    class_gate,
    direction_consistency,
    linear_assignment,
)


def test_assignment_is_optimal_not_greedy() -> None:
    # Greedy would take (0, 0) at 0.1 and force (1, 1) at 0.9: total 1.0; optimal is 0.4.
    cost = np.array([[0.1, 0.2], [0.2, 0.9]])
    matches, rows, cols = linear_assignment(cost, max_cost=0.95)
    assert matches.tolist() == [[0, 1], [1, 0]]
    assert rows.size == 0
    assert cols.size == 0


def test_assignment_drops_pairs_above_max_cost() -> None:
    cost = np.array([[0.1, 0.9], [0.8, 0.95]])
    matches, rows, cols = linear_assignment(cost, max_cost=0.5)
    assert matches.tolist() == [[0, 0]]
    assert rows.tolist() == [1]
    assert cols.tolist() == [1]


def test_assignment_empty() -> None:
    matches, rows, cols = linear_assignment(np.zeros((3, 0)), 0.5)
    assert matches.shape == (0, 2)
    assert rows.tolist() == [0, 1, 2]
    assert cols.size == 0


def test_class_gate_forbids_other_classes() -> None:
    gated = class_gate(np.zeros((2, 2)), np.array([0, 2]), np.array([2, 0]))
    matches, _, _ = linear_assignment(gated, 0.5)
    assert matches.tolist() == [[0, 1], [1, 0]]


def test_direction_consistency_signs() -> None:
    velocity = np.array([[1.0, 0.0], [0.0, 0.0]])
    last = np.array([[0.0, 0.0], [0.0, 0.0]])
    dets = np.array([[10.0, 0.0], [-10.0, 0.0], [0.0, 10.0]])
    score = direction_consistency(velocity, last, dets)
    assert score[0].tolist() == pytest.approx([0.5, -0.5, 0.0])
    assert score[1].tolist() == [0.0, 0.0, 0.0]  # no known direction

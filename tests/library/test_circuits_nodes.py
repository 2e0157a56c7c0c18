"""The node masks Day 5's greedy pruning visits (curriculum/library/circuits.py)."""

from __future__ import annotations

from curriculum.library import circuits


def test_node_masks():
    heads = circuits.head_nodes(2, 3, 4)
    assert heads.shape == (6, 2, 4, 3)
    assert heads[0, 1, :, 0].all() and heads[0].sum() == 4  # the number-sequence study's order: the last layer first
    nodes = circuits.head_position_nodes(2, 3, 4, positions=[3, 1])
    assert nodes.shape == (12, 2, 4, 3) and nodes.sum() == 12
    assert nodes[0, 1, 3, 0] and nodes[1, 1, 1, 0]

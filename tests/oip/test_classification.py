"""Triton's classification extension's answer: the K highest scores of each row, highest first, as
`value:index` with six decimals (C's `%f`, as Triton writes them)."""

from __future__ import annotations

import numpy as np

from app.oip.classification import top_classes


def test_each_row_gives_its_highest_classes_first():
    scores = np.array([[0.05, 0.7, 0.25], [0.6, 0.1, 0.3]], dtype=np.float32)
    assert top_classes(scores, 2).tolist() == [[b"0.700000:1", b"0.250000:2"], [b"0.600000:0", b"0.300000:2"]]


def test_every_class_can_be_asked_for_and_ties_keep_the_lower_index_first():
    scores = np.array([[0.25, 0.5, 0.25]], dtype=np.float32)
    assert top_classes(scores, 3).tolist() == [[b"0.500000:1", b"0.250000:0", b"0.250000:2"]]


def test_the_answer_is_rows_by_count():
    classes = top_classes(np.random.default_rng(0).random((5, 10)), 4)
    assert classes.shape == (5, 4) and classes.dtype == np.object_

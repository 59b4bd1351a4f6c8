"""Triton's classification extension: an output asked for with the parameter `classification: K` comes back as
its K highest-valued classes per row instead of the tensor.

What `tritonclient`'s `InferRequestedOutput(name, class_count=K)` asks for, and what Triton's image-classification
clients print. The answer is a BYTES tensor [N, K], highest first, each element `"<value>:<index>"`: the class's
score and its index along the output's last dimension (for `probabilities`, the index is the digit). Triton adds
`:<label>` when the model has a label file; a digit's label would only repeat its index, so none is sent.
"""

from __future__ import annotations

import numpy as np

CLASSIFICATION_EXTENSION = "classification"
"""The name servers list in their metadata's `extensions` when they answer the classification parameter."""


def top_classes(scores: np.ndarray, count: int) -> np.ndarray:
    """The `count` highest of each row of `scores` (N×C) as `b"<value>:<index>"`, highest first (ties: lower
    index first): an N×count object array of bytes. `value` is written as C's `%f` (six decimals), as Triton does."""
    order = np.argsort(-scores, axis=1, kind="stable")[:, :count]
    values = np.take_along_axis(scores, order, axis=1)
    labels = [
        f"{value:f}:{index}".encode()
        for row_values, row_order in zip(values, order, strict=True)
        for value, index in zip(row_values.tolist(), row_order.tolist(), strict=True)
    ]
    return np.array(labels, dtype=np.object_).reshape(order.shape)

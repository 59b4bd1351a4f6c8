"""training.augment: batch affine augmentation keeps shapes, range and ink, and is seeded."""

import torch

from training.augment import random_affine


def blob_batch(n: int = 16) -> torch.Tensor:
    images = torch.zeros(n, 1, 28, 28)
    images[:, :, 10:18, 12:16] = 1.0
    return images


def test_shape_dtype_and_range_are_kept():
    out = random_affine(blob_batch(), torch.Generator().manual_seed(0))
    assert out.shape == (16, 1, 28, 28) and out.dtype == torch.float32
    assert out.min() >= 0 and out.max() <= 1


def test_same_seed_same_output_and_other_seed_differs():
    a = random_affine(blob_batch(), torch.Generator().manual_seed(3))
    b = random_affine(blob_batch(), torch.Generator().manual_seed(3))
    c = random_affine(blob_batch(), torch.Generator().manual_seed(4))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_each_image_gets_its_own_transform():
    out = random_affine(blob_batch(), torch.Generator().manual_seed(0))
    assert not torch.allclose(out[0], out[1])


def test_zero_ranges_are_the_identity():
    images = blob_batch(4)
    out = random_affine(
        images, torch.Generator().manual_seed(0), max_rotation_deg=0, max_translate=0, scale_range=(1.0, 1.0)
    )
    assert torch.allclose(out, images, atol=1e-5)


def test_ink_stays_in_the_frame_for_small_transforms():
    images = blob_batch(64)
    out = random_affine(images, torch.Generator().manual_seed(1))
    ink_ratio = out.sum(dim=(1, 2, 3)) / images.sum(dim=(1, 2, 3))
    assert ((ink_ratio > 0.7) & (ink_ratio < 1.3)).all()  # scale ±10 % changes area by at most ~21 %

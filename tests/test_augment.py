"""training.augment: batch augmentation keeps shapes and range, is seeded, is the identity at strength 0, and each
part does what it says (ink moves, strokes thicken or thin)."""

import math

import pytest
import torch
import torch.nn.functional as F

from training.augment import (
    Augmentation,
    augment,
    elastic_displacement,
    gaussian_blur,
    random_stroke_width,
    thickened,
    thinned,
)

NONE = Augmentation(
    max_rotation_deg=0, max_scale=0, max_shift=0, elastic_probability=0, stroke_probability=0, stroke_strength=0
)


def blob_batch(n: int = 16) -> torch.Tensor:
    images = torch.zeros(n, 1, 28, 28)
    images[:, :, 10:18, 12:16] = 1.0
    return images


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_shape_dtype_and_range_are_kept():
    out = augment(blob_batch(), seeded(0), Augmentation())
    assert out.shape == (16, 1, 28, 28) and out.dtype == torch.float32
    assert out.min() >= 0 and out.max() <= 1


@pytest.mark.parametrize(
    "config",
    [
        Augmentation(),
        Augmentation(elastic_probability=1, stroke_probability=0),
        Augmentation(elastic_probability=0, stroke_probability=1),
    ],
)
def test_same_seed_same_output_and_other_seed_differs(config):
    a = augment(blob_batch(), seeded(3), config)
    assert torch.equal(a, augment(blob_batch(), seeded(3), config))
    assert not torch.equal(a, augment(blob_batch(), seeded(4), config))


def test_each_image_gets_its_own_transform():
    out = augment(blob_batch(), seeded(0), Augmentation())
    assert not torch.allclose(out[0], out[1])


@pytest.mark.parametrize(
    "config",
    [
        NONE,
        Augmentation(
            max_rotation_deg=0, max_scale=0, max_shift=0, elastic_probability=1, elastic_alpha=0, stroke_probability=0
        ),
        Augmentation(
            max_rotation_deg=0, max_scale=0, max_shift=0, elastic_probability=0, stroke_probability=1, stroke_strength=0
        ),
    ],
)
def test_zero_strength_is_the_identity(config):
    images = torch.rand(4, 1, 28, 28)
    assert torch.allclose(augment(images, seeded(0), config), images, atol=1e-5)


def test_ink_stays_in_the_frame_for_small_affine_transforms():
    images = blob_batch(64)
    config = Augmentation(elastic_probability=0, stroke_probability=0)
    ink_ratio = augment(images, seeded(1), config).sum(dim=(1, 2, 3)) / images.sum(dim=(1, 2, 3))
    assert ((ink_ratio > 0.7) & (ink_ratio < 1.3)).all()  # scale ±10 % changes area by at most ~21 %


def test_elastic_distortion_moves_ink_and_keeps_it_on_average():
    images = blob_batch(32)
    config = Augmentation(max_rotation_deg=0, max_scale=0, max_shift=0, elastic_probability=1, stroke_probability=0)
    out = augment(images, seeded(2), config)
    moved = (out - images).abs().sum(dim=(1, 2, 3))
    assert (moved > 1).all()  # every image changed by more than one pixel's worth of ink
    ink_ratio = out.sum(dim=(1, 2, 3)) / images.sum(dim=(1, 2, 3))
    assert (ink_ratio > 0.4).all()  # stretched or squeezed locally, never wiped out
    assert 0.85 < ink_ratio.mean().item() < 1.15


def test_elastic_displacement_hits_the_chosen_share_and_scales_with_alpha():
    images = torch.zeros(400, 1, 28, 28)
    field = elastic_displacement(images, seeded(5), 0.5, 34.0, 4.0)
    assert field.shape == (400, 28, 28, 2)
    moved = field.abs().amax(dim=(1, 2, 3)) > 0
    assert 0.4 < moved.float().mean().item() < 0.6
    torch.testing.assert_close(elastic_displacement(images, seeded(5), 0.5, 68.0, 4.0), 2 * field)


def test_gaussian_blur_equals_a_zero_padded_separable_convolution():
    field = torch.rand(3, 2, 28, 28, generator=seeded(0))
    sigma = 4.0
    radius = math.ceil(3 * sigma)
    taps = torch.exp(-0.5 * (torch.arange(-radius, radius + 1.0) / sigma) ** 2)
    taps = taps / taps.sum()
    kernel = (taps.view(-1, 1) * taps.view(1, -1)).view(1, 1, 2 * radius + 1, 2 * radius + 1)
    expected = F.conv2d(field.reshape(6, 1, 28, 28), kernel, padding=radius).view(3, 2, 28, 28)
    torch.testing.assert_close(gaussian_blur(field, sigma), expected, atol=1e-5, rtol=1e-5)


def line(width: int) -> torch.Tensor:
    """A vertical bar `width` pixels wide and 14 tall, centred in a 28×28 image."""
    image = torch.zeros(1, 1, 28, 28)
    image[:, :, 7:21, 12 : 12 + width] = 1.0
    return image


def test_thickening_adds_a_pixel_on_each_side_and_thinning_takes_one_off():
    assert thickened(line(2)).sum().item() == 16 * 4  # 14×2 bar → 16×4
    assert thinned(line(4)).sum().item() == 13 * 3  # 14×4 bar → 13×3
    assert thinned(line(2)).sum().item() == 13 * 1  # a 2-pixel stroke keeps a 1-pixel core


def test_stroke_width_change_thickens_some_images_and_thins_others():
    images = line(3).expand(200, 1, 28, 28).contiguous()
    out = random_stroke_width(images, seeded(0), probability=1.0, strength=1.0)
    ink = out.sum(dim=(1, 2, 3))
    thicker, thinner = ink > images[0].sum(), ink < images[0].sum()
    assert 0.4 < thicker.float().mean().item() < 0.6 and (thicker | thinner).float().mean() > 0.98
    # Each image moved toward exactly one of the two: never thicker in one place and thinner in another.
    grew = ((out - images) >= 0).all(dim=(1, 2, 3))
    shrank = ((out - images) <= 0).all(dim=(1, 2, 3))
    assert (grew | shrank).all()
    assert torch.equal(grew & ~shrank, thicker)


def test_stroke_probability_leaves_the_rest_untouched():
    images = line(3).expand(400, 1, 28, 28).contiguous()
    out = random_stroke_width(images, seeded(1), probability=0.25, strength=1.0)
    untouched = (out == images).all(dim=(1, 2, 3)).float().mean().item()
    assert 0.68 < untouched < 0.82

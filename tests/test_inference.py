"""mnist_model.inference: the serving forward pass computes what `Net` computes."""

import pytest
import torch
import torch.nn.functional as F

from mnist_model import Net
from mnist_model.inference import SAME_WIDTH_INTEGER, InferenceNet, max_pool_relu, relu_

FLOATS = [torch.float32, torch.bfloat16, torch.float16]


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("channels_last", [False, True])
def test_max_pool_relu_equals_torchs_pool_then_relu_bit_for_bit(dtype, channels_last):
    torch.manual_seed(0)
    maps = torch.randn(3, 8, 6, 10).to(dtype)
    maps[0, 0, :2, :2] = torch.tensor([[-1.0, -2.0], [-0.5, -3.0]])  # a window of negatives only
    maps[0, 1, :2, :2] = torch.tensor([[-0.0, -1.0], [-2.0, -4.0]])  # -0.0 is the largest
    maps[1, 2, :2, :2] = torch.tensor([[-5.0, 0.0], [-0.0, -1.0]])  # +0.0 beside -0.0
    maps[2, 3, 2:4, 4:6] = torch.tensor([[-7.0, 3.0], [2.5, -1.0]])  # one positive among negatives
    if channels_last:
        maps = maps.contiguous(memory_format=torch.channels_last)
    expected = F.relu(F.max_pool2d(maps.float(), 2)).to(dtype)
    pooled = max_pool_relu(maps)
    assert pooled.dtype == dtype and pooled.shape == (3, 8, 3, 5)
    assert torch.equal(pooled, expected)
    assert not torch.signbit(pooled).any()  # relu gives +0.0, never -0.0
    assert pooled.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("channels_last", [False, True])
def test_relu_in_place_equals_torchs_relu_and_never_leaves_minus_zero(dtype, channels_last):
    torch.manual_seed(0)
    maps = torch.randn(2, 3, 4, 6).to(dtype)
    maps[0, 0, 0, :4] = torch.tensor([-0.0, 0.0, -1e-30, 1e-30])  # signed zeros and (for half types) underflows
    if channels_last:
        maps = maps.contiguous(memory_format=torch.channels_last)
    expected = F.relu(maps)
    negatives = int((maps < 0).sum())
    result = relu_(maps)
    assert result is maps  # in place
    assert torch.equal(result, expected)
    assert not torch.signbit(result).any()
    integers = SAME_WIDTH_INTEGER[dtype]
    positive = expected > 0
    assert torch.equal(result.view(integers)[positive], expected.view(integers)[positive])  # same bits where kept
    assert negatives > 10 and int((result == 0).sum()) >= negatives  # the negatives were there, and are zeros now


def test_max_pool_relu_leaves_its_input_as_it_was():
    maps = torch.randn(2, 4, 4, 4).contiguous(memory_format=torch.channels_last)
    kept = maps.clone()
    max_pool_relu(maps)
    assert torch.equal(maps, kept)


def test_max_pool_relu_refuses_odd_sides():
    with pytest.raises(ValueError, match="even"):
        max_pool_relu(torch.zeros(1, 2, 5, 4))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_inference_net_answers_what_net_answers(dtype):
    torch.manual_seed(0)
    net = Net().to(dtype).to(memory_format=torch.channels_last).eval()
    weights = {name: value.clone() for name, value in net.state_dict().items()}
    images = torch.randn(16, 1, 28, 28).to(dtype).contiguous(memory_format=torch.channels_last)
    fast = InferenceNet(net)
    with torch.inference_mode():
        maps = fast.conv_maps(images)
        assert torch.equal(maps, net.conv_maps(images))  # same maps, bit for bit
        assert maps.is_contiguous(memory_format=torch.channels_last)
        features = fast.dense(maps)
        logits = fast.logits(features)
        expected = net.logits(net.dense(net.conv_maps(images)))
        # fc1 adds the same products in another order: equal up to the accumulation's rounding
        tolerance = {torch.float32: 1e-5, torch.bfloat16: 2e-2}[dtype]
        assert torch.allclose(features.float(), net.dense(net.conv_maps(images)).float(), atol=tolerance)
        assert torch.allclose(logits.float(), expected.float(), atol=tolerance)
        assert torch.equal(logits.argmax(dim=1), expected.argmax(dim=1))
        assert torch.equal(fast.dense(maps.contiguous()), features)  # dense reads NCHW maps too
    assert all(torch.equal(value, weights[name]) for name, value in net.state_dict().items())


def test_inference_net_reads_fc1_columns_in_the_tutorials_order():
    """A single fc1 weight on the input at (channel 5, row 3, column 7) must see exactly that pooled value."""
    net = Net().eval()
    with torch.no_grad():
        net.fc1.weight.zero_()
        net.fc1.bias.zero_()
        net.fc1.weight[0, 5 * 144 + 3 * 12 + 7] = 1.0
    images = torch.randn(2, 1, 28, 28).contiguous(memory_format=torch.channels_last)
    fast = InferenceNet(net.to(memory_format=torch.channels_last))
    with torch.inference_mode():
        maps = fast.conv_maps(images)
        assert torch.equal(fast.dense(maps)[:, 0], maps[:, 5, 3, 7])


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_readout_is_fc1_before_its_relu_then_the_extra_rows_in_the_same_product(dtype):
    torch.manual_seed(0)
    net = Net().eval()
    extra = torch.randn(5, 9216, dtype=torch.float64) / 100  # rows over NCHW-flattened maps, as fc1's weight is
    maps = torch.rand(4, 64, 12, 12)
    with torch.no_grad():
        expected = torch.cat([net.fc1(maps.flatten(1)), maps.flatten(1) @ extra.float().t()], dim=1)
    fast = InferenceNet(net.to(dtype).to(memory_format=torch.channels_last), extra_rows=extra)
    with torch.inference_mode():
        readout = fast.readout(maps.to(dtype).contiguous(memory_format=torch.channels_last))
        assert readout.shape == (4, 128 + 5) and readout.dtype == dtype
        assert (readout[:, :128] < 0).any()  # before the ReLU
        dense = fast.dense(maps.to(dtype).contiguous(memory_format=torch.channels_last))
    tolerance = {torch.float32: 1e-4, torch.bfloat16: 5e-2}[dtype]
    assert torch.allclose(F.relu(readout[:, :128]).float(), dense.float(), atol=tolerance)  # fc1, same weights
    assert torch.allclose(readout.float(), expected, atol=tolerance)

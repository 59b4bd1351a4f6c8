"""mnist_model.network: the architecture is exactly the pytorch/examples Net."""

import pytest
import torch

from mnist_model import Net


def test_output_is_log_probabilities_for_ten_classes():
    model = Net().eval()
    out = model(torch.randn(5, 1, 28, 28))
    assert out.shape == (5, 10)
    assert torch.allclose(out.exp().sum(dim=1), torch.ones(5), atol=1e-5)


def test_parameter_names_and_shapes_match_the_tutorial():
    shapes = {name: tuple(p.shape) for name, p in Net().state_dict().items()}
    assert shapes == {
        "conv1.weight": (32, 1, 3, 3),
        "conv1.bias": (32,),
        "conv2.weight": (64, 32, 3, 3),
        "conv2.bias": (64,),
        "fc1.weight": (128, 9216),
        "fc1.bias": (128,),
        "fc2.weight": (10, 128),
        "fc2.bias": (10,),
    }


def test_dropout_is_active_in_train_mode_only():
    model = Net()
    x = torch.randn(8, 1, 28, 28)
    torch.manual_seed(0)
    model.train()
    assert not torch.equal(model(x), model(x))
    model.eval()
    assert torch.equal(model(x), model(x))


def tutorial_forward(model: Net, x: torch.Tensor) -> torch.Tensor:
    """pytorch/examples mnist/main.py's Net.forward, verbatim, on our module's layers."""
    F = torch.nn.functional
    x = F.relu(model.conv1(x))
    x = F.relu(model.conv2(x))
    x = F.max_pool2d(x, 2)
    x = model.dropout1(x)
    x = torch.flatten(x, 1)
    x = F.relu(model.fc1(x))
    x = model.dropout2(x)
    x = model.fc2(x)
    return F.log_softmax(x, dim=1)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_forward_equals_the_tutorials_bit_for_bit_values_and_gradients(dtype):
    torch.manual_seed(0)
    model = Net().to(dtype)
    x = torch.randn(16, 1, 28, 28, dtype=dtype)
    with torch.inference_mode():
        model.eval()
        assert torch.equal(model(x), tutorial_forward(model, x))
    model.train()
    grads = []
    for forward in (model, lambda inputs: tutorial_forward(model, inputs)):
        model.zero_grad()
        torch.manual_seed(1)  # the same dropout masks
        forward(x).sum().backward()
        grads.append([parameter.grad.clone() for parameter in model.parameters()])
    assert all(torch.equal(ours, theirs) for ours, theirs in zip(*grads, strict=True))


def test_forward_is_conv_maps_then_dense_then_head_and_logits_precede_its_log_softmax():
    torch.manual_seed(0)
    model = Net().eval()
    x = torch.randn(4, 1, 28, 28)
    with torch.no_grad():
        maps = model.conv_maps(x)
        assert maps.shape == (4, 64, 12, 12) and (maps >= 0).all()  # max-pooled conv2 after its ReLU
        kept = maps.clone()
        features = model.dense(maps)
        assert torch.equal(maps, kept)  # dense leaves its input as it was (a caller may still read it)
        assert torch.equal(features, model.features(x))
        assert features.shape == (4, 128) and (features >= 0).all()  # fc1 after its ReLU
        logits = model.logits(features)
        assert torch.equal(model.head(features), model(x))
        assert torch.equal(torch.log_softmax(logits, dim=1), model(x))
        model.train()
        model.dense(maps)  # dropout draws a new tensor in training too
        assert torch.equal(maps, kept)

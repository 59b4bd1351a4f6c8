"""mnist_model.network: the architecture is exactly the pytorch/examples Net."""

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

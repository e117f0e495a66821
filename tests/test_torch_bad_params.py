"""Issue 22: from_torch on parameters with no float64 values on the CPU is one ValueError."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from ensemble_study.torch_io import from_torch  # noqa: E402


def test_meta_device_model_says_to_materialise():
    with torch.device("meta"):
        model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Dropout(0.5), nn.Linear(4, 2))
    with pytest.raises(ValueError, match=r"Linear.*meta device.*materialise"):
        from_torch(model, output="softmax")


def test_complex_weights_are_refused():
    model = nn.Sequential(nn.Linear(3, 2, dtype=torch.complex64))
    with pytest.raises(ValueError, match=r"dtype torch.complex64.*float64"):
        from_torch(model, output="softmax")


def test_materialised_meta_model_converts():
    with torch.device("meta"):
        model = nn.Sequential(nn.Linear(3, 2))
    model = model.to_empty(device="cpu")
    with torch.no_grad():
        model[0].weight.copy_(torch.arange(6.0).reshape(2, 3))
        model[0].bias.zero_()
    net, _ = from_torch(model, output="softmax")
    np.testing.assert_array_equal(net.weights[0], np.arange(6.0).reshape(2, 3).T)

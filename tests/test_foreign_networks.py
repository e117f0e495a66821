"""Issue 18, step 4: networks from elsewhere (CS231n arrays, custom torch modules)."""

import itertools

import numpy as np
import pytest

from ensemble_study import MLP, DropoutConfig
from ensemble_study.ensemble import subnetwork_outputs
from ensemble_study.network import forward


def _cs231n(rng):
    g = np.random.default_rng(rng)
    return (g.normal(size=(5, 3)), g.normal(size=(5, 1)), g.normal(size=(2, 5)),
            g.normal(size=(2, 1)))


def test_out_in_layout_matches_the_cs231n_forward_pass():
    W1, b1, W2, b2 = _cs231n(0)
    net = MLP.from_arrays([W1, W2], [b1, b2], "relu", layout="out_in")
    x = np.random.default_rng(1).normal(size=(4, 3))
    expected = (W2 @ np.maximum(W1 @ x.T + b1, 0) + b2).T
    np.testing.assert_allclose(forward(net, x), expected, rtol=1e-12)


def test_shape_errors_name_the_transpose_and_the_flatten():
    W1, b1, W2, b2 = _cs231n(0)
    with pytest.raises(ValueError, match=r"layout='out_in'"):
        MLP.from_arrays([W1, W2], [b1.ravel(), b2.ravel()])
    with pytest.raises(ValueError, match=r"flatten it \(b.ravel\(\)"):
        MLP.from_arrays([W1.T, W2.T], [b1, b2])
    with pytest.raises(ValueError, match=r"layout must be 'in_out'"):
        MLP.from_arrays([W1.T], [b1.ravel()], layout="rows")


def test_custom_module_round_trip_over_every_mask():
    torch = pytest.importorskip("torch")
    from torch import nn
    from torch.nn import functional as F

    from ensemble_study.torch_io import from_torch

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.fc2, self.out = nn.Linear(3, 4), nn.Linear(4, 3), nn.Linear(3, 2)
            self.drop = nn.Dropout(0.5)

        def forward(self, x):
            x = self.drop(F.relu(self.fc1(x)))
            x = self.drop(torch.tanh(self.fc2(x)))
            return F.softmax(self.out(x), dim=1)

    torch.manual_seed(0)
    model = Net().double()
    net, cfg = from_torch(model)
    assert net.architecture == "3-4-3-2" and net.output == "softmax"
    assert cfg == DropoutConfig(0.5, layers=[1, 2])
    X = np.random.default_rng(2).normal(size=(5, 3))
    masks = np.array(list(itertools.product([0, 1], repeat=7)))
    ours = subnetwork_outputs(net, cfg, X, masks)
    xt = torch.tensor(X)
    with torch.no_grad():
        for i, m in enumerate(masks):
            a1 = F.relu(model.fc1(xt)) * torch.tensor(m[:4]) / 0.5
            a2 = torch.tanh(model.fc2(a1)) * torch.tensor(m[4:]) / 0.5
            np.testing.assert_allclose(ours[i], F.softmax(model.out(a2), 1).numpy(),
                                       rtol=1e-10, atol=1e-14)


def test_custom_module_it_cannot_map_is_refused_by_name_and_position():
    torch = pytest.importorskip("torch")
    from torch import nn

    from ensemble_study.torch_io import from_torch

    class Skip(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.fc2 = nn.Linear(3, 3), nn.Linear(3, 2)

        def forward(self, x):
            return self.fc2(torch.relu(self.fc1(x)) + x)

    with pytest.raises(ValueError, match=r"Skip.*position 2 .'add'"):
        from_torch(Skip())

    class Conv(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.fc = nn.Conv1d(1, 1, 1), nn.Linear(3, 2)

        def forward(self, x):
            return self.fc(self.conv(x))

    with pytest.raises(ValueError, match=r"'conv'.*Conv1d is not supported"):
        from_torch(Conv())

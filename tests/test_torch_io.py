"""from_torch / to_torch against PyTorch itself.

The brute force here runs the torch model in train mode over every joint
dropout mask, with each ``nn.Dropout``'s forward replaced by a fixed mask
(``x * m / (1 - p)``, checked against torch's own dropout first), and weights
the outputs by the masks' probabilities: nothing of this package's forward
pass or enumeration is used for the reference.
"""

import itertools
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="PyTorch is not installed (pip install -e '.[torch]')")
nn = torch.nn

from ensemble_study import (  # noqa: E402
    MLP,
    DropoutConfig,
    exact_ensemble,
    from_torch,
    scaled_forward,
    to_torch,
)
from ensemble_study.activations import HIDDEN_ACTIVATIONS  # noqa: E402


@pytest.fixture(autouse=True)
def one_torch_thread():
    # Thousands of tiny forward passes: torch's thread pool costs ms per call on a
    # busy machine (softmax of a 5x3 tensor measured at 9 ms with 2 threads).
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_importing_the_package_does_not_import_torch():
    import subprocess

    code = "import sys, ensemble_study; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_torch_train_mode_dropout_is_mask_over_keep_prob():
    # The brute force below multiplies by m / (1 - p) by hand; that is torch's rule.
    torch.manual_seed(0)
    drop = nn.Dropout(0.3).train()
    x = torch.ones(10_000, dtype=torch.float64)
    y = drop(x)
    kept = y != 0
    assert torch.all(y[kept] == 1 / (1 - 0.3))
    assert 0.6 < kept.double().mean() < 0.8
    assert torch.equal(drop.eval()(x), x)


def _model(output):
    """3-4-3-k: dropout on the input (p=0.25) and on both hidden layers (0.5, 0.375)."""
    torch.manual_seed(1)
    head = {"softmax": [nn.Linear(3, 3), nn.Softmax(dim=-1)],
            "sigmoid": [nn.Linear(3, 1), nn.Sigmoid()],
            "identity": [nn.Linear(3, 2)]}[output]
    return nn.Sequential(
        nn.Dropout(0.25), nn.Linear(3, 4), nn.Tanh(), nn.Dropout(0.5),
        nn.Linear(4, 3), nn.ReLU(), nn.Dropout(0.375), *head,
    ).double()


def _brute_force(model, X):
    """Mean, variance and log-outputs per mask of ``model`` in train mode, every mask."""
    drops = [m for m in model if isinstance(m, nn.Dropout)]
    widths = [3, 4, 3]  # the widths of the activations the Dropouts act on
    keep = [1 - d.p for d in drops]
    Xt = torch.tensor(X)
    outs, probs = [], []
    model.train()
    for bits in itertools.product((0, 1), repeat=sum(widths)):
        bits = np.array(bits, dtype=np.float64)
        prob, start = 1.0, 0
        for d, w, q in zip(drops, widths, keep):
            m = torch.tensor(bits[start:start + w])
            d.forward = lambda x, m=m, q=q: x * m / q
            prob *= float(np.prod(np.where(bits[start:start + w] == 1, q, 1 - q)))
            start += w
        with torch.no_grad():
            outs.append(model(Xt).numpy())
        probs.append(prob)
    for d in drops:
        del d.forward  # back to the class's forward
    outs, probs = np.array(outs), np.array(probs)
    assert abs(probs.sum() - 1) < 1e-12
    mean = np.einsum("k,kij->ij", probs, outs)
    var = np.einsum("k,kij->ij", probs, (outs - mean) ** 2)
    return mean, var, outs, probs


@pytest.mark.parametrize("output", ["softmax", "sigmoid", "identity"])
def test_exact_ensemble_equals_torch_over_every_mask(output):
    model = _model(output)
    X = np.random.default_rng(2).normal(size=(5, 3))
    mean, var, outs, probs = _brute_force(model, X)
    net, cfg = from_torch(model, output=None)
    assert net.output == output and cfg.scheme == "inverted"
    assert dict(cfg.keep_prob) == {0: 0.75, 1: 0.5, 2: 0.625}
    ens = exact_ensemble(net, cfg, X)
    assert ens.n_subnetworks == 2**10
    np.testing.assert_allclose(ens.mean, mean, rtol=0, atol=1e-12)
    np.testing.assert_allclose(ens.variance, var, rtol=0, atol=1e-12)
    if output == "softmax":
        g = np.exp(np.einsum("k,kij->ij", probs, np.log(outs)))
        nwgm = g / g.sum(axis=1, keepdims=True)
    elif output == "sigmoid":
        g = np.exp(np.einsum("k,kij->ij", probs, np.log(outs)))
        g1 = np.exp(np.einsum("k,kij->ij", probs, np.log1p(-outs)))
        nwgm = g / (g + g1)
    else:
        nwgm = None
    if nwgm is None:
        assert ens.geometric_mean is None
    else:
        np.testing.assert_allclose(ens.geometric_mean, nwgm, rtol=0, atol=1e-12)


@pytest.mark.parametrize("output", ["softmax", "sigmoid", "identity"])
def test_eval_mode_is_the_scaled_pass(output):
    model = _model(output).eval()
    X = np.random.default_rng(3).normal(size=(7, 3))
    net, cfg = from_torch(model)
    with torch.no_grad():
        y = model(torch.tensor(X)).numpy()
    np.testing.assert_allclose(scaled_forward(net, cfg, X), y, rtol=0, atol=1e-12)


def test_float32_model_is_read_as_float64_copies():
    torch.manual_seed(4)
    model = nn.Sequential(nn.Linear(3, 5), nn.ReLU(), nn.Dropout(0.5), nn.Linear(5, 2))
    net, cfg = from_torch(model, output="softmax")
    W = model[0].weight.detach().numpy()
    assert net.weights[0].dtype == np.float64 and net.weights[0].shape == (3, 5)
    assert np.array_equal(net.weights[0], W.T.astype(np.float64))
    assert cfg == DropoutConfig(0.5, layers=[1], scheme="inverted")
    X = np.random.default_rng(5).normal(size=(4, 3))
    with torch.no_grad():
        logits = model.eval()(torch.tensor(X, dtype=torch.float32)).double()
    np.testing.assert_allclose(scaled_forward(net, cfg, X), torch.softmax(logits, -1), atol=1e-6)
    with torch.no_grad():
        model[0].weight.zero_()  # copies, not views
    assert np.any(net.weights[0] != 0)


def test_logits_square_layer_is_transposed():
    # The bug of the issue: a square nn.Linear accepted as if (in, out).
    lin = nn.Linear(2, 2, dtype=torch.float64)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[1.0, 2.0], [3.0, 4.0]]))
        lin.bias.zero_()
    net, cfg = from_torch(nn.Sequential(nn.Dropout(0.5), lin))
    x = np.array([[1.0, 0.0]])
    np.testing.assert_array_equal(scaled_forward(net, cfg, x), [[1.0, 3.0]])


def _random_model_pair(seed):
    gen = np.random.default_rng(seed)
    sizes = tuple(int(s) for s in gen.integers(1, 5, size=gen.integers(2, 5)))
    hidden = tuple(gen.choice(list(HIDDEN_ACTIVATIONS), len(sizes) - 2))
    output = str(gen.choice(["identity", "sigmoid", "softmax"]))
    net = MLP.random(sizes, list(hidden), output, rng=gen)
    layers = sorted(set(gen.integers(0, len(sizes) - 1, size=2).tolist()))
    kp = {l: float(gen.choice([0.5, 0.625, 0.75, 1.0])) for l in layers}
    return net, DropoutConfig(kp, scheme="inverted")


@pytest.mark.parametrize("seed", range(12))
def test_from_torch_of_to_torch_is_the_identity(seed):
    net, cfg = _random_model_pair(seed)
    back, back_cfg = from_torch(to_torch(net, cfg))
    assert back.hidden == net.hidden and back.output == net.output
    for a, b in zip(back.weights + back.biases, net.weights + net.biases):
        assert np.array_equal(a, b)
    assert back_cfg.layers == cfg.layers and back_cfg.scheme == "inverted"
    assert all(back_cfg.layer_keep_prob(l) == cfg.layer_keep_prob(l) for l in cfg.layers)


@pytest.mark.parametrize("seed", range(4))
def test_vanilla_config_exports_the_same_family(seed):
    net, cfg = _random_model_pair(seed)
    vanilla = DropoutConfig(dict(cfg.keep_prob), scheme="vanilla")
    back, back_cfg = from_torch(to_torch(net, vanilla))
    X = np.random.default_rng(seed).normal(size=(3, net.sizes[0]))
    a, b = exact_ensemble(net, vanilla, X), exact_ensemble(back, back_cfg, X)
    np.testing.assert_allclose(a.mean, b.mean, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(scaled_forward(net, vanilla, X),
                               scaled_forward(back, back_cfg, X), rtol=1e-12, atol=1e-14)


def test_to_torch_of_from_torch_keeps_modules_and_parameters():
    model = _model("softmax")
    again = to_torch(*from_torch(model))
    assert [type(m) for m in again] == [type(m) for m in model]
    assert [getattr(m, "p", None) for m in again] == [getattr(m, "p", None) for m in model]
    sd, sd2 = model.state_dict(), again.state_dict()
    assert sd.keys() == sd2.keys() and all(torch.equal(sd[k], sd2[k]) for k in sd)


def test_no_dropout_gives_no_config_and_back():
    model = nn.Sequential(nn.Linear(2, 3), nn.Sigmoid(), nn.Linear(3, 1)).double()
    net, cfg = from_torch(model)
    assert cfg is None and net.hidden == ("sigmoid",) and net.output == "identity"
    assert not any(isinstance(m, nn.Dropout) for m in to_torch(net, None))


def test_equivalent_layouts_are_accepted():
    # A Dropout before a ReLU drops the same units as after it; Identity is nothing;
    # Linear-Linear is an identity hidden layer; a bias-less Linear has zero bias.
    torch.manual_seed(6)
    model = nn.Sequential(
        nn.Identity(), nn.Linear(3, 4, bias=False), nn.Dropout(0.5), nn.ReLU(),
        nn.Linear(4, 3), nn.Dropout(0.25), nn.Linear(3, 2), nn.Identity(), nn.Softmax(dim=1),
    ).double()
    net, cfg = from_torch(model)
    assert net.sizes == (3, 4, 3, 2) and net.hidden == ("relu", "identity")
    assert np.array_equal(net.biases[0], np.zeros(4))
    assert dict(cfg.keep_prob) == {1: 0.5, 2: 0.75}
    # Train mode over every mask of the 7 dropped units, masks fixed by hand.
    X = np.random.default_rng(7).normal(size=(4, 3))
    drops = [model[2], model[5]]
    mean = np.zeros((4, 2))
    for bits in itertools.product((0, 1), repeat=7):
        bits = np.array(bits, dtype=np.float64)
        m0, m1 = torch.tensor(bits[:4]), torch.tensor(bits[4:])
        drops[0].forward = lambda x, m=m0: x * m / 0.5
        drops[1].forward = lambda x, m=m1: x * m / 0.75
        prob = 0.5**4 * np.prod(np.where(bits[4:] == 1, 0.75, 0.25))
        with torch.no_grad():
            mean += prob * model.train()(torch.tensor(X)).numpy()
    np.testing.assert_allclose(exact_ensemble(net, cfg, X).mean, mean, rtol=0, atol=1e-12)


def _lin(i=3, o=3):
    return nn.Linear(i, o)


@pytest.mark.parametrize("modules,match", [
    ([_lin(), nn.GELU(), _lin()], r"module 1 \(GELU\(.*\)\): GELU is not supported"),
    ([_lin(), nn.Sequential(nn.ReLU()), _lin()], r"module 1 .*Sequential is not supported"),
    ([_lin(), nn.ReLU(), nn.AlphaDropout(0.5), _lin()], r"module 2 .*AlphaDropout is not"),
    ([_lin(), nn.ReLU(), nn.Dropout1d(0.5), _lin()], r"module 2 .*Dropout1d is not"),
    ([_lin(), nn.LogSoftmax(dim=-1)], r"module 1 .*got LogSoftmax"),
    ([_lin(), nn.Softmax(dim=0)], r"module 1 .*last dimension.*got dim=0"),
    ([_lin(), nn.Softmax(dim=None)], r"module 1 .*got dim=None"),
    ([_lin(), nn.ReLU()], r"module 1 .*got ReLU"),
    ([_lin(), nn.Sigmoid(), nn.Sigmoid()], r"module 2 .*got Sigmoid"),
    ([_lin(), nn.Dropout(0.5)], r"module 1 .*after the last Linear"),
    ([_lin(), nn.Softmax(dim=-1), nn.Dropout(0.5)], r"module 2 .*after the last Linear"),
    ([nn.Dropout(1.0), _lin()], r"module 0 .*p must be in \[0, 1\).*p=1.0"),
    ([nn.Dropout(0.5), nn.Dropout(0.5), _lin()], r"module 1 .*second Dropout on .*layer 0"),
    ([_lin(), nn.ReLU(), nn.Dropout(0.2), nn.Dropout(0.2), _lin()], r"module 3 .*second"),
    ([_lin(), nn.Dropout(0.5), nn.Tanh(), _lin()], r"module 1 .*before a Tanh.*after module 2"),
    ([_lin(), nn.Dropout(0.5), nn.Sigmoid(), _lin()], r"module 1 .*before a Sigmoid"),
    ([nn.ReLU(), _lin()], r"module 0 .*before the first Linear"),
    ([_lin(), nn.ReLU(), nn.Tanh(), _lin()], r"module 2 .*second activation on hidden layer 1"),
    ([_lin(3, 4), nn.ReLU(), _lin(3, 2)], r"module 2 .*in_features=3 .*out_features=4"),
    ([nn.ReLU()], r"at least one nn.Linear"),
])
def test_unsupported_modules_are_refused_by_position(modules, match):
    with pytest.raises(ValueError, match=match):
        from_torch(nn.Sequential(*modules))


def test_bad_arguments_are_refused():
    assert from_torch(nn.Linear(2, 3))[0].architecture == "2-3"  # a chain of one
    with pytest.raises(ValueError, match=r"torch.nn.Module .*; got str"):
        from_torch("Linear")
    with pytest.raises(ValueError, match=r"output must be one of .*got 'gelu'"):
        from_torch(nn.Sequential(_lin()), output="gelu")
    with pytest.raises(ValueError, match=r"output='softmax' contradicts module 1 .*'sigmoid'"):
        from_torch(nn.Sequential(_lin(), nn.Sigmoid()), output="softmax")
    with pytest.raises(ValueError, match=r"net must be an MLP; got Sequential"):
        to_torch(nn.Sequential(_lin()), None)
    net = MLP.random((2, 3, 1), rng=0)
    with pytest.raises(ValueError, match=r"cannot drop layer 2"):
        to_torch(net, DropoutConfig(0.5, layers=[2]))


@pytest.mark.slow
def test_torch_example_script_runs(tmp_path):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "scripts" / "torch_example.py"
    spec = importlib.util.spec_from_file_location("torch_example", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    df = script.run(tmp_path / "model.pt", seed=0, epochs=1)
    assert len(df) == 3 + len(script.KS) * script.N_DRAWS
    exact = df[df.predictor == "exact_mean"].iloc[0]
    assert exact.n_samples == 2**16 and exact.nll_minus_exact == 0 and exact.max_abs_gap == 0
    # the saved model is what the rows describe
    net, cfg = from_torch(torch.load(tmp_path / "model.pt", weights_only=False), output="softmax")
    assert net.architecture == "64-8-8-10" and dict(cfg.keep_prob) == {1: 0.7, 2: 0.8}

"""
Moment propagation
==================

:func:`ensemble_study.moment_propagation` predicts the ensemble's mean *and*
variance in one deterministic pass, pushing each unit's mean and variance
through the network as if the units of a layer were independent. Where is it
exact, and how close is it elsewhere? Against the exact ensemble, on small
random networks.
"""

# %%
# Exact where the theory says
# ---------------------------
# With one dropped layer feeding an identity output, the units of that layer
# are independent given the input, and moment propagation's mean and variance
# are exact (fact 11 of the concepts page).
import matplotlib.pyplot as plt
import numpy as np

from ensemble_study import MLP, DropoutConfig, exact_ensemble, moment_propagation, scaled_forward

X = np.random.default_rng(0).normal(size=(40, 4))
net = MLP.random((4, 10, 2), hidden="tanh", output="identity", rng=1)
cfg = DropoutConfig(0.5, layers=[1])
mp, exact = moment_propagation(net, cfg, X), exact_ensemble(net, cfg, X)
print("one dropped layer, identity output: largest error of the mean",
      np.abs(mp.mean - exact.mean).max(), "and of the variance",
      np.abs(mp.variance - exact.variance).max())

# %%
# An approximation elsewhere
# --------------------------
# Two dropped hidden layers and a sigmoid output: the second layer's units
# share the first layer's masks, and the output is nonlinear. Per activation,
# moment propagation's mean against the scaled pass's, both as errors from
# the exact mean, and its variance against the exact variance.
fig, axes = plt.subplots(1, 2, figsize=(9, 4), layout="constrained")
for color, hidden in zip(["tab:gray", "tab:blue", "tab:orange", "tab:green"],
                         ["identity", "relu", "tanh", "sigmoid"]):
    net = MLP.random((4, 8, 8, 1), hidden=hidden, output="sigmoid", rng=2)
    cfg = DropoutConfig(0.5, layers=[1, 2])
    exact, mp = exact_ensemble(net, cfg, X), moment_propagation(net, cfg, X)
    scaled = scaled_forward(net, cfg, X)
    axes[0].scatter(np.abs(scaled - exact.mean), np.abs(mp.mean - exact.mean), s=14,
                    color=color, label=hidden)
    axes[1].scatter(exact.variance, mp.variance, s=14, color=color, label=hidden)
    print(f"{hidden:8s} mean error: scaled pass {np.abs(scaled - exact.mean).mean():.4f}, "
          f"moment propagation {np.abs(mp.mean - exact.mean).mean():.4f}")

top = axes[0].get_xlim()[1]
axes[0].plot([0, top], [0, top], ":", color="gray")
axes[0].set_xlabel("|scaled pass - exact mean|")
axes[0].set_ylabel("|moment propagation - exact mean|")
axes[0].set_title("Mean: below the diagonal, MP is closer")
low, high = axes[1].get_xlim()
axes[1].plot([low, high], [low, high], ":", color="gray")
axes[1].set_xlabel("exact variance")
axes[1].set_ylabel("moment propagation's variance")
axes[1].set_title("Variance over the subnetworks")
for ax in axes:
    ax.legend(title="hidden units")
plt.show()

# %%
# `Every approximation against the exact ensemble
# <../results/approximations.html>`_ measures this over many networks, trained
# and random, and compares moment propagation with every other shortcut.

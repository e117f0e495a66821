"""
A CS231n-style numpy network
============================

The CS231n notes write a three-layer network with inverted dropout in a few
lines of numpy: weights stored ``(fan_out, fan_in)``, column biases, one
example per *column*. This example builds such a network, transposes it into
the package's layout (weights ``(fan_in, fan_out)``, one example per row),
checks that the notes' own test-time ``predict`` is the package's scaled
pass, and then looks at what that pass stands for: every one of its
subnetworks.
"""

# %%
# The network, as the notes write it
# ----------------------------------
# The notes call the keep probability ``p``; here it is ``keep_prob``, the
# probability of *keeping* a unit.
import matplotlib.pyplot as plt
import numpy as np

from ensemble_study import MLP, DropoutConfig, exact_ensemble, scaled_forward, subnetwork_outputs

rng = np.random.default_rng(0)
D, H, C = 4, 8, 3  # inputs, hidden units per layer, classes
keep_prob = 0.5

W1 = rng.normal(0, np.sqrt(2 / D), (H, D))  # (fan_out, fan_in), as in the notes
b1 = rng.normal(0, 0.1, (H, 1))  # column biases
W2 = rng.normal(0, np.sqrt(2 / H), (H, H))
b2 = rng.normal(0, 0.1, (H, 1))
W3 = rng.normal(0, np.sqrt(1 / H), (C, H))
b3 = rng.normal(0, 0.1, (C, 1))


def train_step_forward(X, rng):
    """The notes' forward pass at training time: inverted dropout."""
    H1 = np.maximum(0, np.dot(W1, X) + b1)
    U1 = (rng.random(H1.shape) < keep_prob) / keep_prob
    H2 = np.maximum(0, np.dot(W2, H1 * U1) + b2)
    U2 = (rng.random(H2.shape) < keep_prob) / keep_prob
    return np.dot(W3, H2 * U2) + b3


def predict(X):
    """The notes' test-time pass: no dropout, no scaling (inverted dropout)."""
    H1 = np.maximum(0, np.dot(W1, X) + b1)
    H2 = np.maximum(0, np.dot(W2, H1) + b2)
    return np.dot(W3, H2) + b3  # class scores, one column per example


# %%
# Into the package's layout
# -------------------------
# Transpose every weight matrix to ``(fan_in, fan_out)`` and flatten the
# biases to ``(fan_out,)``. (``MLP.from_arrays(..., layout="out_in")``, which
# will take the notes' layout as it is, is coming; until then, by hand.) The
# scores become probabilities through a softmax output.
net = MLP.from_arrays([W1.T, W2.T, W3.T], [b1.ravel(), b2.ravel(), b3.ravel()],
                      hidden="relu", output="softmax")
cfg = DropoutConfig(keep_prob, layers=[1, 2])  # both hidden layers, inverted
print(net, cfg)

X_rows = rng.normal(size=(5, D))  # the package: one example per row
X_cols = X_rows.T  # the notes: one example per column


def softmax_columns(S):
    E = np.exp(S - S.max(axis=0))
    return E / E.sum(axis=0)


print("notes' predict against scaled_forward, largest difference:",
      np.abs(softmax_columns(predict(X_cols)).T - scaled_forward(net, cfg, X_rows)).max())

# %%
# What the scaled pass stands for
# -------------------------------
# Sixteen dropped units: 2^16 = 65,536 subnetworks, each as likely as its
# mask. The exact ensemble averages them all; the notes' ``predict`` runs one
# pass.
exact = exact_ensemble(net, cfg, X_rows)
np.set_printoptions(precision=3, suppress=True)
print("exact mean of class 0 ", exact.mean[:, 0])
print("scaled pass, class 0  ", scaled_forward(net, cfg, X_rows)[:, 0])
print("exact NWGM, class 0   ", exact.geometric_mean[:, 0])

# %%
# Every subnetwork's probability of class 0 for the first input, and where
# the three summaries fall. ``subnetwork_outputs`` runs any batch of joint
# masks (one row per mask, the dropped units ordered by layer, then unit).
masks = np.array([[(i >> j) & 1 for j in range(2 * H)] for i in range(2 ** (2 * H))])
probs = subnetwork_outputs(net, cfg, X_rows[:1], masks)[:, 0, 0]

fig, ax = plt.subplots(figsize=(6, 3.5), layout="constrained")
ax.hist(probs, bins=60, color="lightgray", edgecolor="gray")
for value, label, color in [(exact.mean[0, 0], "exact mean", "black"),
                            (exact.geometric_mean[0, 0], "NWGM", "tab:purple"),
                            (scaled_forward(net, cfg, X_rows[:1])[0, 0], "scaled pass",
                             "tab:red")]:
    ax.axvline(value, color=color, lw=2, label=label)
ax.set_xlabel("p(class 0) of one subnetwork")
ax.set_ylabel("subnetworks")
ax.set_title("The 65,536 subnetworks of a CS231n-style network, one input")
ax.legend()
plt.show()

# %%
# A training-time pass of the notes is one of those subnetworks, drawn at
# random: its average over many draws is the exact mean, not ``predict``.
draws = np.stack([softmax_columns(train_step_forward(X_cols[:, :1], rng))[0, 0]
                  for _ in range(4000)])
print(f"mean of 4,000 training-time passes: {draws.mean():.3f} "
      f"(exact mean {exact.mean[0, 0]:.3f})")

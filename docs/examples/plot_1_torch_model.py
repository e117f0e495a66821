"""
Your own PyTorch model
======================

Train a small digits classifier with dropout in plain PyTorch, read it into
the package with :func:`ensemble_study.from_torch`, and ask what its
``eval()`` pass approximates: the exact ensemble of its 2^16 subnetworks, or
their geometric mean (NWGM)? And where does MC dropout done the PyTorch way
(``model.train()``, K stochastic passes) converge?

`A PyTorch network on digits <../results/torch_example.html>`_ is the same
at full size, with confidence intervals.
"""

# %%
# Train with dropout, the PyTorch way
# -----------------------------------
# PyTorch's ``nn.Dropout(p)`` drops with probability ``p``: it is
# ``keep_prob = 1 - p`` here. Its dropout is inverted (scaled at training
# time), so ``model.eval()`` is the inverted scheme's scaled pass.
import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import nn

from ensemble_study import exact_ensemble, from_torch, scaled_forward
from ensemble_study.datasets import load_dataset

torch.manual_seed(0)
torch.set_num_threads(1)
data = load_dataset("digits", rng=0)  # scikit-learn's 8x8 digits, standardised
X_train, y_train = torch.as_tensor(data.X_train), torch.as_tensor(data.y_train)

model = nn.Sequential(nn.Linear(64, 8), nn.ReLU(), nn.Dropout(0.3),
                      nn.Linear(8, 8), nn.ReLU(), nn.Dropout(0.2),
                      nn.Linear(8, 10)).double()
optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
model.train()
for _epoch in range(40):
    order = torch.randperm(len(X_train))
    for start in range(0, len(order), 64):
        batch = order[start:start + 64]
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(X_train[batch]), y_train[batch]).backward()
        optimizer.step()

# %%
# Read it into the package
# ------------------------
# The model ends in a Linear layer, so it returns logits: ``output="softmax"``
# says they were trained with the cross-entropy.
net, cfg = from_torch(model, output="softmax")
print(net)
print(cfg)

X_test, y_test = data.X_test, data.y_test
exact = exact_ensemble(net, cfg, X_test)  # every one of the 2**16 subnetworks
scaled = scaled_forward(net, cfg, X_test)

model.eval()
with torch.no_grad():
    eval_pass = model(torch.as_tensor(X_test)).softmax(-1).numpy()
print("eval() pass against scaled_forward, largest difference:",
      np.abs(eval_pass - scaled).max())

# %%
# Which ensemble does the ``eval()`` pass approximate?
# ----------------------------------------------------
# Total variation distance per image, averaged over the test images.


def tv(p, q):
    return 0.5 * np.abs(p - q).sum(axis=1).mean()


def error(p):
    return (p.argmax(axis=1) != y_test).mean()


print(f"eval() pass to the exact mean: {tv(scaled, exact.mean):.3f}; "
      f"to the NWGM: {tv(scaled, exact.geometric_mean):.3f}")
for name, p in [("exact mean", exact.mean), ("NWGM", exact.geometric_mean),
                ("eval() pass", scaled)]:
    print(f"{name:12s} test error {error(p):.3f}")

# %%
# MC dropout, the PyTorch way, against the exact ensemble
# -------------------------------------------------------
# ``model.train()`` keeps dropout on; the average of K stochastic passes is a
# K-member sampled ensemble. Its distance from the exact mean shrinks like
# K^(-1/2); it does not converge to the ``eval()`` pass.
model.train()
with torch.no_grad():
    X_t = torch.as_tensor(X_test)
    passes = np.stack([model(X_t).softmax(-1).numpy() for _ in range(300)])
ks = np.array([1, 3, 10, 30, 100, 300])
mc_tv = [tv(passes[:k].mean(axis=0), exact.mean) for k in ks]

fig, ax = plt.subplots(figsize=(6, 4), layout="constrained")
ax.loglog(ks, mc_tv, "o-", label="MC dropout (K passes in train mode)")
ax.loglog(ks, mc_tv[0] / np.sqrt(ks), ":", color="gray", label="K^(-1/2)")
ax.axhline(tv(scaled, exact.mean), color="tab:red", label="eval() pass")
ax.axhline(tv(exact.geometric_mean, exact.mean), color="tab:purple", ls="--",
           label="exact NWGM")
ax.set_xlabel("K (stochastic passes)")
ax.set_ylabel("total variation from the exact mean")
ax.set_title("A PyTorch model: distance from its exact ensemble")
ax.legend()
plt.show()

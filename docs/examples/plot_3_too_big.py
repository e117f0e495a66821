"""
A network too big to enumerate
===============================

A 64-256-256-10 network with both hidden layers dropped has 2^512
subnetworks: no computer enumerates them. :func:`ensemble_study.exact_ensemble`
says so before doing any work, and :func:`ensemble_study.sample_ensemble`
estimates the ensemble from sampled subnetworks, with a standard error that
says how far the estimate may be from the exact mean.
"""

# %%
import textwrap

import matplotlib.pyplot as plt
import numpy as np

from ensemble_study import MLP, DropoutConfig, exact_ensemble, sample_ensemble, scaled_forward

net = MLP.random((64, 256, 256, 10), hidden="relu", output="softmax", rng=0)
cfg = DropoutConfig(0.5, layers=[1, 2])
X = np.random.default_rng(1).normal(size=(20, 64))

try:
    exact_ensemble(net, cfg, X)
except ValueError as exc:
    print(textwrap.fill(str(exc), 88))

# %%
# Sample instead
# --------------
# K subnetworks drawn from their distribution: the mean is unbiased, and
# ``stderr`` (the members' standard deviation over sqrt(K)) is calibrated:
# about 95% of the intervals mean +- 1.96 stderr hold the exact mean.
ks = [10, 100, 1000]
results = {k: sample_ensemble(net, cfg, X, n_samples=k, rng=k) for k in ks}
scaled = scaled_forward(net, cfg, X)
for k, res in results.items():
    gap = np.abs(res.mean - scaled)
    print(f"K = {k:5d}: median stderr {np.median(res.stderr):.4f}; "
          f"|sampled mean - scaled pass| median {np.median(gap):.4f}, "
          f"more than 2 stderr for {np.mean(gap > 2 * res.stderr):.0%} of the values")

# %%
# The standard error shrinks like K^(-1/2). Where the gap between the
# sampled mean and the scaled pass exceeds a few standard errors, the scaled
# pass is measurably away from the exact ensemble.
fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), layout="constrained")
median_se = [np.median(results[k].stderr) for k in ks]
axes[0].loglog(ks, median_se, "o-", label="median stderr")
axes[0].loglog(ks, median_se[0] * np.sqrt(ks[0] / np.array(ks)), ":", color="gray",
               label="K^(-1/2)")
axes[0].set_xlabel("K (sampled subnetworks)")
axes[0].set_ylabel("standard error")
axes[0].set_title("The error bar shrinks like K^(-1/2)")
axes[0].legend()

res = results[1000]
classes = np.arange(10)
axes[1].errorbar(classes, res.mean[0], yerr=1.96 * res.stderr[0], fmt="o",
                 label="sampled mean, K = 1000 (95% interval)")
axes[1].plot(classes, scaled[0], "x", color="tab:red", ms=8, label="scaled pass")
axes[1].set_xlabel("class")
axes[1].set_ylabel("probability")
axes[1].set_title("One input: ensemble against scaled pass")
axes[1].legend()
plt.show()

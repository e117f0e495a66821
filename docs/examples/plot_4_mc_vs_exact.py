"""
MC dropout at K against the exact ensemble
==========================================

Monte Carlo dropout averages K sampled subnetworks. How far is that average
from the exact ensemble, as K grows, and from how many samples is it closer
than the single scaled pass? On a network small enough to enumerate, both
questions have exact answers.

`Monte Carlo dropout against the scaled pass <../results/mc.html>`_ asks them
over many networks, with confidence intervals.
"""

# %%
import matplotlib.pyplot as plt
import numpy as np

from ensemble_study import MLP, DropoutConfig, exact_ensemble, sample_ensemble, scaled_forward

net = MLP.random((4, 8, 8, 3), hidden="relu", output="softmax", rng=0)
cfg = DropoutConfig(0.5, layers=[1, 2])  # 16 dropped units: 65,536 subnetworks
X = np.random.default_rng(1).normal(size=(50, 4))

exact = exact_ensemble(net, cfg, X)
scaled_error = np.abs(scaled_forward(net, cfg, X) - exact.mean).mean()

# %%
# Twenty independent K-member ensembles per K, each from its own stream of
# ``SeedSequence(0).spawn``: the error of each against the exact mean, and
# whether its 95% interval (mean +- 1.96 stderr) holds the exact mean.
ks = np.array([2, 5, 10, 20, 50, 100, 200, 500, 1000])
n_draws = 20
streams = iter(np.random.SeedSequence(0).spawn(len(ks) * n_draws))
errors = np.empty((len(ks), n_draws))
coverage = np.empty((len(ks), n_draws))
for i, k in enumerate(ks):
    for d in range(n_draws):
        mc = sample_ensemble(net, cfg, X, n_samples=int(k), rng=next(streams))
        errors[i, d] = np.abs(mc.mean - exact.mean).mean()
        coverage[i, d] = (np.abs(mc.mean - exact.mean) <= 1.96 * mc.stderr).mean()

crossing = ks[np.argmax(np.median(errors, axis=1) < scaled_error)]
print(f"the median K-member ensemble is closer than the scaled pass from K = {crossing}")
# At small K the standard error is itself a noisy estimate from K members, and
# the normal interval holds the exact mean less often than 95%; it gets there
# as K grows.
print("share of 95% intervals holding the exact mean, per K:",
      np.round(coverage.mean(axis=1), 3))

# %%
fig, ax = plt.subplots(figsize=(6, 4), layout="constrained")
median = np.median(errors, axis=1)
ax.fill_between(ks, errors.min(axis=1), errors.max(axis=1), alpha=0.2,
                label="range over 20 draws")
ax.loglog(ks, median, "o-", label="MC dropout, median over draws")
ax.loglog(ks, median[0] * np.sqrt(ks[0] / ks), ":", color="gray", label="K^(-1/2)")
ax.axhline(scaled_error, color="tab:red", label="scaled pass")
ax.set_xlabel("K (sampled subnetworks)")
ax.set_ylabel("mean |estimate - exact mean|")
ax.set_title("4-8-8-3 ReLU network, keep_prob 0.5")
ax.legend()
plt.show()

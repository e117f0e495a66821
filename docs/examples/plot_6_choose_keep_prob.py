"""
Choosing a keep_prob
====================

keep_prob is a hyperparameter: choose it on held-out data, never on the test
set, and with the predictor you will deploy. Here, for networks trained with
dropout on the digits, the validation likelihood of the scaled pass picks
keep_prob; the test split then tells how the scaled pass and the exact
ensemble do at that choice.
"""

# %%
# Train one network per keep_prob
# --------------------------------
# A 64-12-10 ReLU network, its hidden layer dropped (inverted dropout), each
# trained from the same initial weights with the same seed; 15% of the
# training images held out as a validation split. ``keep_prob = 1`` is the
# no-dropout baseline.
import matplotlib.pyplot as plt
import numpy as np

from ensemble_study import MLP, DropoutConfig, exact_ensemble, scaled_forward
from ensemble_study.datasets import load_dataset
from ensemble_study.train import TrainConfig, error_rate, negative_log_likelihood, train

data = load_dataset("digits", rng=0)
order = np.random.default_rng(1).permutation(len(data.X_train))
n_val = int(0.15 * len(order))
val, fit = order[:n_val], order[n_val:]
X_fit, y_fit = data.X_train[fit], data.y_train[fit]
X_val, y_val = data.X_train[val], data.y_train[val]

initial = MLP.random((64, 12, 10), hidden="relu", output="softmax", rng=2)
recipe = TrainConfig(optimizer="adam", learning_rate=0.01, epochs=30, batch_size=32)
keep_probs = [0.3, 0.5, 0.7, 0.9, 1.0]
rows = []
for q in keep_probs:
    cfg = DropoutConfig(q, layers=[1])
    net, _ = train(initial, cfg if q < 1 else None, X_fit, y_fit, train_cfg=recipe, rng=3)
    exact = exact_ensemble(net, cfg, data.X_test)  # 2**12 subnetworks per image
    rows.append({
        "keep_prob": q,
        "validation NLL": negative_log_likelihood(
            "softmax", scaled_forward(net, cfg, X_val), y_val),
        "test error, scaled": error_rate("softmax", scaled_forward(net, cfg, data.X_test),
                                         data.y_test),
        "test error, exact": error_rate("softmax", exact.mean, data.y_test),
        "test NLL, scaled": negative_log_likelihood(
            "softmax", scaled_forward(net, cfg, data.X_test), data.y_test),
        "test NLL, exact": negative_log_likelihood("softmax", exact.mean, data.y_test),
    })

for row in rows:
    print("  ".join(f"{k} {v:.3f}" for k, v in row.items()))
chosen = min(rows, key=lambda row: row["validation NLL"])["keep_prob"]
print(f"chosen on the validation split: keep_prob = {chosen}")

# %%
# The choice, and what the test split says
# ----------------------------------------
# Dropout is not free: a network this small, on a training set this small,
# may do best without it, and then the validation split says so (the choice
# printed above) as the no-dropout baseline of `Srivastava et al.'s Fig. 11
# <../results/srivastava.html>`_ does at full scale. At low keep_prob the
# exact ensemble's arithmetic mean averages many crippled subnetworks: it is
# under-confident, and its likelihood suffers most. One training seed per
# keep_prob: differences this small need several seeds and paired intervals
# before they mean anything (see `After training on real data
# <../results/trained.html>`_).
fig, axes = plt.subplots(1, 2, figsize=(9, 4.2), layout="constrained")
q = [row["keep_prob"] for row in rows]
axes[0].plot(q, [row["validation NLL"] for row in rows], "o-", color="black",
             label="scaled pass, validation")
axes[0].plot(q, [row["test NLL, scaled"] for row in rows], "s--", color="tab:red",
             label="scaled pass, test")
axes[0].plot(q, [row["test NLL, exact"] for row in rows], "^--", color="tab:blue",
             label="exact mean, test")
axes[0].set_ylabel("NLL (nats per image)")
axes[1].plot(q, [row["test error, scaled"] for row in rows], "s--", color="tab:red",
             label="scaled pass, test")
axes[1].plot(q, [row["test error, exact"] for row in rows], "^--", color="tab:blue",
             label="exact mean, test")
axes[1].set_ylabel("test error")
for ax in axes:
    ax.axvline(chosen, color="gray", ls=":", label="chosen keep_prob")
    ax.set_xlabel("keep_prob of the hidden layer")
# One legend for both panels, under them, where it hides no point.
fig.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center", ncols=4)
axes[0].set_title("Likelihood")
axes[1].set_title("Error")
plt.show()

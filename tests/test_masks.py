"""Enumerating and sampling joint masks."""

import itertools

import numpy as np
import pytest

from ensemble_study.masks import (
    enumerate_masks,
    mask_log_probs,
    n_free_units,
    n_masks,
    sample_masks,
)


def test_enumeration_is_binary_counting_over_the_free_units():
    q = np.array([0.5, 1.0, 0.3, 0.8])  # unit 1 is always kept
    masks = np.concatenate([m for m, _ in enumerate_masks(q, chunk_size=3)])
    expected = [(a, 1, b, c) for a, b, c in itertools.product((0, 1), repeat=3)]
    np.testing.assert_array_equal(masks, np.array(expected, dtype=bool))
    assert n_free_units(q) == 3 and n_masks(q) == 8


@pytest.mark.parametrize("chunk_size", [1, 3, 8, 100])
def test_chunks_are_bounded_and_cover_everything(chunk_size):
    q = np.full(5, 0.6)
    chunks = list(enumerate_masks(q, chunk_size))
    sizes = [m.shape[0] for m, _ in chunks]
    assert all(s <= chunk_size for s in sizes) and sum(sizes) == 32
    assert len(chunks) == -(-32 // chunk_size)
    for m, lp in chunks:
        # log-probabilities agree with the standalone function
        np.testing.assert_allclose(lp, mask_log_probs(m, q), rtol=1e-14)


def test_no_free_unit_gives_one_certain_mask():
    (chunk,) = list(enumerate_masks([1.0, 1.0], chunk_size=4))
    masks, log_probs = chunk
    np.testing.assert_array_equal(masks, [[True, True]])
    np.testing.assert_array_equal(log_probs, [0.0])


def test_mask_log_probs_by_hand():
    q = [0.5, 0.25, 1.0]
    lp = mask_log_probs([[1, 1, 1], [0, 0, 1], [1, 0, 0]], q)
    np.testing.assert_allclose(np.exp(lp[:2]), [0.5 * 0.25, 0.5 * 0.75], rtol=1e-15)
    assert lp[2] == -np.inf  # drops a unit whose keep_prob is 1


def test_sample_masks_frequencies():
    q = np.array([0.1, 0.5, 0.9, 1.0])
    K = 40_000
    masks = sample_masks(q, K, rng=0)
    assert masks.shape == (K, 4) and masks.dtype == bool
    # Each column is K Bernoulli(q) draws: 5 standard deviations.
    assert np.all(np.abs(masks.mean(axis=0) - q) <= 5 * np.sqrt(q * (1 - q) / K))
    assert masks[:, 3].all()
    # The units are independent: the correlation of two columns is ~ N(0, 1/K).
    assert abs(np.corrcoef(masks[:, 0], masks[:, 1])[0, 1]) < 5 / np.sqrt(K)
    np.testing.assert_array_equal(masks, sample_masks(q, K, rng=np.random.default_rng(0)))

"""Shared test setup.

The backend is set before anything imports matplotlib, so that no test (and
no figure code under test) ever tries to open a window.
"""

import os

os.environ["MPLBACKEND"] = "Agg"

import pytest

# A few fixed seeds: the tests must hold for each of them (and for any other),
# so no tolerance below is tuned to a particular draw.
SEEDS = (0, 1, 2)


@pytest.fixture(params=SEEDS)
def seed(request):
    return request.param


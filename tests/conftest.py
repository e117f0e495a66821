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



@pytest.fixture(scope="session", autouse=True)
def _compiled_kernels():
    """Compile (or load from numba's disk cache) every kernel once, up front.

    With an empty cache, tests that start worker processes would otherwise
    have each worker compile the kernels again, at the same time.
    """
    from ensemble_study import kernels

    if kernels.backend() == "numba":
        from ensemble_study.bench import warm_up

        warm_up()

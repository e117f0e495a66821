"""The studies: one package each, discovered (see :mod:`ensemble_study.study`).

A new study is a new package here: ``__init__`` declares ``STUDY`` and its
compute, ``show`` its figures and documentation blocks. Nothing else lists
the studies: the CLI, ``reproduce``, ``figures``, ``report`` and the
contract tests take them from :func:`registry`.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil

from .. import tables as _others  # noqa: F401  (importing it registers its tables)
from ..study import TABLES, Study


@functools.lru_cache(maxsize=1)
def registry() -> dict[str, Study]:
    """Every study, by name, in ``reproduce`` order (``Study.order``, then name).

    Importing a study's package registers its figures and blocks too: each
    package imports its ``show`` module at the end of its ``__init__``.
    """
    found = []
    for info in pkgutil.iter_modules(__path__):
        if not info.ispkg or info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        study = getattr(module, "STUDY", None)
        if not isinstance(study, Study):
            raise TypeError(f"{module.__name__} defines no STUDY (a ensemble_study.study.Study)")
        if study.name != info.name:
            raise ValueError(f"{module.__name__}: STUDY.name is {study.name!r}; it must be "
                             f"the package's name, {info.name!r}")
        found.append(study)
    return {s.name: s for s in sorted(found, key=lambda s: (s.order, s.name))}


def default_studies() -> list[str]:
    """The studies ``ensemble-study reproduce`` runs, in order."""
    return [name for name, study in registry().items() if study.reproduce]


def get(name: str) -> Study:
    """The study ``name`` (``ValueError`` listing the known ones)."""
    studies = registry()
    if name not in studies:
        raise ValueError(f"unknown study {name!r}; known: {', '.join(studies)}")
    return studies[name]


def tables() -> dict:
    """Every saved table with figures or blocks: the studies, then the others
    (:mod:`ensemble_study.tables`), by CSV stem."""
    registry()
    return dict(TABLES)

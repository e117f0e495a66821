"""The main job: every default study, its figures, and the documents' generated blocks.

``ensemble-study reproduce`` calls :func:`reproduce`. The studies are those
whose declaration says ``reproduce=True`` (:func:`ensemble_study.studies.default_studies`),
run one after another on one shared pool or cluster, each table saved as
soon as it is done; then every figure is drawn from the saved tables; then
the generated blocks of the documents (README.md and the pages under
``docs/``) are rewritten from them, so that what
the documents say is what the new tables say (wall times always differ from
the committed ones, and another host's floating-point kernels can move the
last bits of a trained network).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from .executor import Execution, connect
from .results import save_result


def run_studies(results_dir: Path, execution: Execution, *, quick: bool = False,
                echo: Callable = print) -> pd.DataFrame:
    """Run every default study into ``results_dir``; the wall seconds each took.

    Returns
    -------
    DataFrame
        ``study, rows, seconds`` (cells taken from the store cost nothing).
    """
    from .studies import default_studies, get

    costs = []
    with connect(execution) as execution:
        for name in default_studies():
            study = get(name)
            echo(f"[{name}] running{' (quick)' if quick else ''} ...")
            start = time.perf_counter()
            params = study.check_params(quick=quick)
            df = study.run(params, progress=True, execution=execution)
            path = save_result(df, results_dir / f"{name}.csv", study.sidecar(params))
            seconds = time.perf_counter() - start
            costs.append({"study": name, "rows": len(df), "seconds": seconds})
            echo(f"[{name}] wrote {path} ({len(df)} rows, {seconds:.1f} s)")
            if study.measure is not None:  # seconds, kept out of the byte-reproducible table
                path = save_result(study.measure(params), results_dir / f"{name}_timing.csv",
                                   study.sidecar(params))
                echo(f"[{name}] wrote {path}")
    return pd.DataFrame(costs, columns=["study", "rows", "seconds"])


def refresh_documents(results_dir: Path, root: Path = Path(), *,
                      echo: Callable = print) -> list[str]:
    """Regenerate the blocks of every document under ``root`` (:func:`report.documents`:
    README.md and the pages under docs/); the names of the blocks changed.

    Every document is rendered before any is written.
    """
    from .publish import update
    from .report import documents
    from .results import atomic_write_text

    updates = [(doc, *update(doc.read_text(), results_dir)) for doc in documents(root)]
    changed_all = []
    for doc, new, changed in updates:
        if changed:
            atomic_write_text(doc, new)
        echo(f"{doc}: {len(changed)} generated block(s) rewritten"
             + (f": {', '.join(changed)}" if changed else ""))
        changed_all += changed
    return changed_all

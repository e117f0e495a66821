"""The studies: one module each, each returning one tidy DataFrame.

Every study module defines

* ``NAME``, the CSV stem under ``results/``;
* ``cells(params) -> list``: small picklable cell descriptors (one network
  each), in grid order;
* ``run_cell(cell, params) -> list[dict]``: a top-level function computing
  one cell's rows, drawing only from that cell's stream (fixed by its grid
  position or by the cell itself), so that cells can run anywhere, in any
  order;
* ``run(*, progress=False, execution=None, **params) -> DataFrame``, which
  maps ``run_cell`` over the cells with :func:`ensemble_study.executor.map_cells`
  (``execution`` says where, and where finished cells are stored) and tidies;
* ``run_default(quick, progress=False, execution=None) -> (DataFrame, dict)``,
  its default grid (a small one when ``quick``) and the parameters to record
  in the sidecar.

``DEFAULT_STUDIES`` lists what ``ensemble-study reproduce`` runs, in order.
"""

DEFAULT_STUDIES: list[str] = ["sweep", "mc", "spread", "depth", "trained", "boundary",
                                "approximations"]

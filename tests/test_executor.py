"""Studies and exact ensembles on a local pool and a LocalCluster; the cell store; progress.

Byte-identity of a study's CSV whatever the executor, the number of workers
and the order cells finish in; bit-identity of exact_ensemble over workers;
an interrupted study resumed to the same bytes; progress lines in logs.
"""

import io
import math
import os
import pickle
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import click
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from test_cli import fresh_folder, without_cells

import ensemble_study.studies as studies
from ensemble_study import MLP, DropoutConfig, cli, exact_ensemble
from ensemble_study.executor import CellStore, Execution, Progress, map_cells, process_pool
from ensemble_study.kernels import default_threads
from ensemble_study.masks import enumerate_masks, mask_chunk, n_chunks
from ensemble_study.studies import mc, sweep, trained

# 2 outputs x 2 activations x 3 seeds = 12 cells.
TINY_SWEEP = dict(activations=("relu", "tanh"), outputs=("sigmoid", "softmax"),
                  keep_probs=(0.3, 0.9, 1.0), width=3, depth=2, n_features=3, n_inputs=5,
                  n_networks=3, seed=4)
TINY_MC = dict(activations=("relu", "sigmoid"), output="softmax", scheme="inverted",
               keep_prob=0.5, width=3, depth=2, n_features=3, n_inputs=4, n_networks=2,
               n_samples=(1, 10), n_draws=3, seed=2)
N_CELLS = 12


def csv_bytes(df: pd.DataFrame) -> bytes:
    """The bytes ``save_result`` writes for a table."""
    return df.to_csv(index=False, float_format="%.17g").encode()


@pytest.fixture(scope="module")
def client():
    distributed = pytest.importorskip("distributed", reason="needs the [dask] extra")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as c:
        yield c


@pytest.fixture(scope="module")
def pool():
    with process_pool(2) as p:
        yield p


@pytest.fixture(scope="module")
def serial_sweep():
    return csv_bytes(sweep.STUDY.run(**TINY_SWEEP))


# --- one study, any executor: the same bytes --------------------------------------

def test_sweep_cells_are_the_grid():
    cells = sweep.cells(sweep.STUDY.check_params(TINY_SWEEP))
    assert len(cells) == N_CELLS == len(set(cells))
    assert cells[0] == ("sigmoid", "relu", 0) and cells[-1] == ("softmax", "tanh", 2)


def test_sweep_bytes_on_a_local_pool_threads_and_a_local_cluster(serial_sweep, client):
    with ThreadPoolExecutor(5) as threads:
        for execution in (Execution(jobs=2), Execution(executor=threads),
                          Execution(executor=client)):
            assert csv_bytes(sweep.STUDY.run(**TINY_SWEEP, execution=execution)) == serial_sweep


def test_mc_bytes_on_a_local_pool_and_a_local_cluster(pool, client):
    """Sampled ensembles too: each draws from its cell's stream."""
    serial = csv_bytes(mc.STUDY.run(**TINY_MC))
    before = os.environ.get("ENSEMBLE_STUDY_THREADS")
    for execution in (Execution(executor=pool), Execution(executor=client)):
        assert csv_bytes(mc.STUDY.run(**TINY_MC, execution=execution)) == serial
    # The in-process Dask workers' one-thread setting does not outlive the run.
    assert os.environ.get("ENSEMBLE_STUDY_THREADS") == before


@pytest.mark.slow  # worker start-up and training: ~10 s on a busy machine
def test_trained_bytes_on_a_local_pool(pool):
    """Training (BLAS, one thread in workers) and sampled ensembles give the same bytes."""
    params = dict(datasets=("digits_2v3",), hidden=(3, 3), keep_probs=(0.5, 0.9),
                  schemes=("inverted",), seeds=(0, 1), n_test=30, n_samples=(1, 10),
                  n_draws=1, epochs=2)
    serial = csv_bytes(trained.STUDY.run(**params))
    assert csv_bytes(trained.STUDY.run(**params, execution=Execution(executor=pool))) == serial


def _slow_first(cell, params):
    """Cell 0 sleeps longest, so cells finish in reverse grid order on a pool."""
    time.sleep(0.15 * (params["n"] - cell))
    return [{"cell": cell, "value": math.sqrt(cell) / 3, "finished": time.time()}]


def test_rows_come_in_grid_order_whatever_order_cells_finish():
    with ThreadPoolExecutor(4) as threads:  # every cell starts at once
        rows = map_cells("slow", _slow_first, range(4), {"n": 4},
                         execution=Execution(executor=threads))
    assert [r["cell"] for r in rows] == [0, 1, 2, 3]
    assert [r["value"] for r in rows] == [math.sqrt(i) / 3 for i in range(4)]
    finished = [r["finished"] for r in rows]
    assert finished == sorted(finished, reverse=True), "cells finished in reverse order"


def _threads_cell(cell, params):
    return [{"cell": cell, "threads": default_threads()}]


def test_pool_workers_run_exact_ensemble_on_one_thread(pool):
    rows = map_cells("threads", _threads_cell, range(4), {}, execution=Execution(executor=pool))
    assert [r["threads"] for r in rows] == [1, 1, 1, 1]


@pytest.mark.parametrize("value, expected", [("1", 1), ("3", 3), (" 2 ", 2)])
def test_default_threads_honours_the_environment(value, expected, monkeypatch):
    monkeypatch.setenv("ENSEMBLE_STUDY_THREADS", value)
    assert default_threads() == expected


@pytest.mark.parametrize("value", ["0", "two", "-1", "1.5"])
def test_default_threads_rejects_a_bad_environment(value, monkeypatch):
    monkeypatch.setenv("ENSEMBLE_STUDY_THREADS", value)
    with pytest.raises(ValueError, match=r"ENSEMBLE_STUDY_THREADS must be a positive integer"):
        default_threads()


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(jobs=0), ValueError, r"jobs must be a positive integer or None.*got 0"),
    (dict(jobs=True), ValueError, r"jobs must be a positive integer or None.*got True"),
    (dict(scheduler=""), ValueError, r"scheduler must be None, 'local' or a scheduler address"),
    (dict(executor="pool"), TypeError, r"executor must be a concurrent.futures.Executor"),
    (dict(fresh="yes"), TypeError, r"fresh must be a bool; got 'yes'"),
])
def test_bad_execution_is_refused(kwargs, error, match):
    with pytest.raises(error, match=match):
        Execution(**kwargs)


# --- resumable studies -----------------------------------------------------------------

class Interrupt(Exception):
    pass


def stop_after(n):
    def report(done, total):
        if done >= n:
            raise Interrupt(f"stopped after {done} of {total} cells")
    return report


@pytest.mark.parametrize("jobs", [1, 2])
def test_interrupted_study_resumes_to_the_same_bytes(jobs, serial_sweep, tmp_path):
    execution = Execution(jobs=jobs, store=tmp_path)
    with pytest.raises(Interrupt):
        sweep.STUDY.run(**TINY_SWEEP, execution=execution, progress=stop_after(5))
    stored = sorted(tmp_path.glob("sweep-*/cell-*.csv"))
    # Every finished cell was stored before the callback ran; a pool may have
    # finished a few more while the interruption was raised.
    assert 5 <= len(stored) < N_CELLS
    computed = []
    resumed = sweep.STUDY.run(**TINY_SWEEP, execution=execution,
                        progress=lambda done, total: computed.append(done))
    assert len(computed) == N_CELLS - len(stored)
    assert csv_bytes(resumed) == serial_sweep
    # A complete store: nothing recomputed, the same bytes again.
    computed.clear()
    again = sweep.STUDY.run(**TINY_SWEEP, execution=execution,
                      progress=lambda done, total: computed.append(done))
    assert computed == [] and csv_bytes(again) == serial_sweep
    # fresh=True ignores the store.
    fresh = sweep.STUDY.run(**TINY_SWEEP, execution=Execution(jobs=jobs, store=tmp_path, fresh=True),
                      progress=lambda done, total: computed.append(done))
    assert len(computed) == N_CELLS and csv_bytes(fresh) == serial_sweep


def test_store_is_keyed_by_study_parameters_version_and_source(tmp_path, monkeypatch):
    a = CellStore(tmp_path, "sweep", {"seed": 0})
    assert CellStore(tmp_path, "sweep", {"seed": 0}).folder == a.folder
    assert CellStore(tmp_path, "sweep", {"seed": 1}).folder != a.folder
    assert CellStore(tmp_path, "mc", {"seed": 0}).folder != a.folder
    monkeypatch.setattr("ensemble_study.__version__", "99.0")
    assert CellStore(tmp_path, "sweep", {"seed": 0}).folder != a.folder
    monkeypatch.undo()
    # Other code (an edited checkout, same version): other cells.
    monkeypatch.setattr("ensemble_study.executor.source_digest", lambda depends=(): "edited")
    assert CellStore(tmp_path, "sweep", {"seed": 0}).folder != a.folder


def test_store_key_covers_the_cells_code_not_the_figures():
    from ensemble_study.executor import _source_files, source_digest

    study = "ensemble_study.studies.sweep"
    files = {p.relative_to(Path(sweep.__file__).parents[3]).as_posix()
             for p in _source_files((study,))}
    assert {"ensemble_study/studies/sweep/__init__.py", "ensemble_study/ensemble.py",
            "ensemble_study/kernels/compiled.py"} <= files
    for shown in ("ensemble_study/studies/sweep/show.py", "ensemble_study/plots.py",
                  "ensemble_study/report.py", "ensemble_study/cli/__init__.py",
                  "ensemble_study/studies/mc/__init__.py"):
        assert shown not in files
    assert source_digest((study,)) != source_digest(("ensemble_study.studies.mc",))


def test_store_is_lossless(tmp_path):
    """Floats read back bit for bit (and stay floats); ints, strings, NaN, bools too."""
    rows = [{"name": "relu", "k": 3, "x": 0.1 + 0.2, "y": -0.0, "z": 1.0, "flag": True},
            {"name": "NA", "k": -7, "x": 5e-324, "y": np.nan, "z": 1e300, "flag": False},
            {"name": "", "k": 2**40, "x": -np.inf, "y": 2.0**-1074 * 3, "z": np.pi,
             "flag": True}]
    store = CellStore(tmp_path, "toy", {})
    store.save(0, rows)
    store.save(1, [])
    back = store.load(0)
    for want, got in zip(rows, back):
        assert got["k"] == want["k"] and got["flag"] == want["flag"]
        for col in ("x", "y", "z"):
            assert np.float64(got[col]).tobytes() == np.float64(want[col]).tobytes(), col
    assert back[0]["name"] == "relu" and back[1]["name"] == "NA"
    assert store.load(1) == [] and store.load(2) is None
    assert csv_bytes(pd.DataFrame(back)) == csv_bytes(pd.DataFrame(rows))


def test_cli_resumes_and_says_so(tmp_path):
    args = ["sweep", "--width", "2", "--n-seeds", "3", "--n-inputs", "3", "--keep-prob", "0.5",
            "--activation", "relu", "--activation", "tanh", "--out", "s.csv", "--jobs", "1"]
    with fresh_folder(tmp_path):
        first = CliRunner().invoke(cli.main, args)
        assert first.exit_code == 0, first.output
        before = open("s.csv", "rb").read()
        again = CliRunner().invoke(cli.main, args)
        assert again.exit_code == 0, again.output
        assert "[sweep] 12 cells, 12 from the store" in again.stderr
        assert open("s.csv", "rb").read() == before
        fresh = CliRunner().invoke(cli.main, [*args, "--fresh"])
        assert "from the store" not in fresh.stderr
        assert open("s.csv", "rb").read() == before


def test_reproduce_resumes_study_by_study(tmp_path, monkeypatch):
    monkeypatch.setattr(studies, "default_studies", lambda: ["spread", "mc"])
    monkeypatch.setattr("ensemble_study.publish.render_all", lambda *args: [])  # tested elsewhere
    args = ["reproduce", "--quick", "--jobs", "1"]
    with fresh_folder(tmp_path):
        first = CliRunner().invoke(cli.main, args)
        assert first.exit_code == 0, first.output
        csvs = {name: open(f"quick/results/{name}.csv", "rb").read() for name in ("spread", "mc")}
        again = CliRunner().invoke(cli.main, args)
        assert again.exit_code == 0, again.output
        assert "[spread] 3 cells, 3 from the store" in again.stderr
        assert "[mc] 6 cells, 6 from the store" in again.stderr
        for name, before in csvs.items():
            assert open(f"quick/results/{name}.csv", "rb").read() == before
        stores = sorted(p.name.split("-")[0] for p in Path("quick/results/.cells").iterdir())
        assert stores == ["mc", "spread"]
        assert not Path("results").exists() and not Path("figures").exists()


# --- progress in logs -----------------------------------------------------------------

def test_progress_lines_when_stderr_is_not_a_terminal(tmp_path):
    args = ["sweep", "--width", "2", "--n-seeds", "5", "--n-inputs", "3", "--keep-prob", "0.5",
            "--activation", "relu", "--activation", "tanh", "--out", "s.csv", "--jobs", "1"]
    with fresh_folder(tmp_path):
        result = CliRunner().invoke(cli.main, args)
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stderr.splitlines() if line.startswith("[sweep]")]
    assert lines[0] == "[sweep] 20 cells"
    # One line per 10% of the 20 cells, each with done/total, elapsed and ETA.
    done = [int(line.split()[1].split("/")[0]) for line in lines[1:]]
    assert done == list(range(2, 21, 2))
    assert all("/20 cells (" in line and " elapsed, ETA " in line for line in lines[1:])
    assert lines[-1].startswith("[sweep] 20/20 cells (100%)") and lines[-1].endswith("ETA 0s")


def test_progress_prints_a_line_every_interval_while_a_cell_runs():
    stream = io.StringIO()
    with Progress("slow", 3, report=True, interval=0.05, stream=stream) as bar:
        time.sleep(0.4)
        bar.advance()
    lines = stream.getvalue().splitlines()
    assert lines[0] == "[slow] 3 cells"
    heartbeats = [line for line in lines if line.startswith("[slow] 0/3 cells (0%)")]
    assert len(heartbeats) >= 3 and all("ETA ?" in line for line in heartbeats)
    assert lines[-1].startswith("[slow] 1/3 cells (33%)")


# --- --jobs, --scheduler, --fresh on the command line ----------------------------------

@pytest.mark.parametrize("command", [*studies.registry(), "reproduce"])
def test_every_study_command_has_the_execution_options(command):
    names = {p.name for p in cli.main.commands[command].params}
    assert {"jobs", "scheduler", "fresh"} <= names


@pytest.mark.parametrize("command", sorted(cli.main.commands))
def test_every_option_has_help_and_shows_its_default(command):
    """One help format across commands: help text, then any default in [default: ...]."""
    for param in cli.main.commands[command].params:
        if not isinstance(param, click.Option) or param.name == "help":
            continue
        assert param.help, f"{command} --{param.name} has no help"
        if param.is_flag or param.required or param.default in (None, ()):
            continue  # a default of None is "not given", and a few say what it means
        assert param.show_default or "[default:" in param.help, \
            f"{command} --{param.name} does not show its default {param.default!r}"


@pytest.mark.parametrize("command", sorted(cli.main.commands))
def test_help_states_defaults_in_one_format(command):
    """``help.  [default: X; range]``: no parenthesised default, no bracket left apart."""
    result = CliRunner().invoke(cli.main, [command, "--help"])
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    assert "[default: (" not in text and "] [" not in text and " . [default:" not in text
    assert "[default: 0.01; x>0]" in text or command not in ("train", "trained")


def test_scheduler_without_dask_is_a_usage_error_naming_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed fails
    with fresh_folder(tmp_path):
        result = CliRunner().invoke(cli.main, ["sweep", "--scheduler", "local", "--width", "2"])
        files = [str(p) for p in Path().rglob("*")]
    assert result.exit_code == 2
    assert "Invalid value for '--scheduler'" in result.output
    assert "pip install -e '.[dask]'" in result.output and files == []


def test_bad_scheduler_is_a_usage_error_and_writes_nothing(tmp_path, monkeypatch):
    pytest.importorskip("distributed", reason="needs the [dask] extra")
    monkeypatch.setattr("ensemble_study.executor.CONNECT_TIMEOUT", 1)
    args = ["spread", "--width", "2", "--n-inputs", "2", "--activation", "relu"]
    with fresh_folder(tmp_path):
        empty = CliRunner().invoke(cli.main, [*args, "--scheduler", " "])
        nowhere = CliRunner().invoke(cli.main, [*args, "--scheduler", "tcp://127.0.0.1:1"])
        files = [str(p) for p in Path().rglob("*")]
    assert empty.exit_code == 2 and "got an empty string" in empty.output
    assert nowhere.exit_code == 2
    assert "no dask scheduler reachable at 'tcp://127.0.0.1:1'" in nowhere.output
    assert files == []


def test_cli_study_on_a_local_cluster(tmp_path):
    pytest.importorskip("distributed", reason="needs the [dask] extra")
    args = ["depth", "--width", "2", "--width", "3", "--depth", "1", "--n-seeds", "1",
            "--n-inputs", "3", "--max-dropped", "3", "--activation", "relu"]
    with fresh_folder(tmp_path):
        local = CliRunner().invoke(cli.main, [*args, "--out", "a.csv", "--jobs", "1"])
        dask = CliRunner().invoke(cli.main, [*args, "--out", "b.csv", "--scheduler", "local",
                                             "--jobs", "1"])
        assert local.exit_code == 0 and dask.exit_code == 0, dask.output
        assert open("a.csv", "rb").read() == open("b.csv", "rb").read()


def test_figures_names_the_missing_csvs_and_exits_1_when_none_drawn(tmp_path):
    with fresh_folder(tmp_path):
        (tmp_path / "empty").mkdir()
        none = CliRunner().invoke(cli.main, ["figures", "--results", str(tmp_path / "empty")])
        assert none.exit_code == 1
        assert "skipped sweep.png, sweep_slope.png: no " in none.stderr
        assert "no figure drawn" in none.stderr
        spread = CliRunner().invoke(cli.main, ["spread", "--width", "2", "--n-inputs", "2",
                                               "--activation", "relu", "--jobs", "1"])
        assert spread.exit_code == 0, spread.output
        some = CliRunner().invoke(cli.main, ["figures"])
        assert some.exit_code == 0, some.output
        assert "wrote figures/spread.png" in some.output
        assert "skipped mc.png: no results/mc.csv" in some.stderr
        assert "spread.png" not in some.stderr
        assert without_cells([str(p) for p in Path("figures").rglob("*")]) \
            == ["figures/spread.png"]


# --- one exact ensemble across workers ---------------------------------------------------

NETS = {
    # the last dropped layer feeds the output: the shortcut path (softmax: product tables)
    "shortcut softmax": (MLP.random((4, 8, 8, 3), "relu", "softmax", rng=0),
                         DropoutConfig(0.5, [1, 2]), 16),
    # identity output: analytic over the inner layer, more outer masks per chunk
    "shortcut identity": (MLP.random((4, 8, 8, 2), "tanh", "identity", rng=1),
                          DropoutConfig({1: 0.3, 2: 0.8}, scheme="vanilla"), 16),
    # a layer after the last dropped one: every mask's forward pass
    "generic": (MLP.random((4, 8, 8, 4, 3), "tanh", "softmax", rng=2),
                DropoutConfig(0.6, [1, 2]), 4),
}


def assert_same_bits(a, b):
    assert a.n_subnetworks == b.n_subnetworks
    for name in ("mean", "variance", "geometric_mean"):
        x, y = getattr(a, name), getattr(b, name)
        assert (x is None and y is None) or x.tobytes() == y.tobytes(), name


@pytest.mark.parametrize("case", NETS)
@pytest.mark.parametrize("chunk_size", [None, 4096])
def test_exact_ensemble_on_a_local_cluster_equals_the_local_one_bit_for_bit(
        case, chunk_size, client):
    net, cfg, n = NETS[case]
    X = np.random.default_rng(3).normal(size=(n, 4))
    local = exact_ensemble(net, cfg, X, chunk_size=chunk_size)
    assert local.n_subnetworks == 2**16
    assert_same_bits(exact_ensemble(net, cfg, X, chunk_size=chunk_size, executor=client), local)


@pytest.mark.parametrize("case", NETS)
def test_exact_ensemble_on_a_process_pool_equals_the_local_one(case, pool):
    net, cfg, n = NETS[case]
    X = np.random.default_rng(4).normal(size=(n, 4))
    local = exact_ensemble(net, cfg, X, chunk_size=2048)
    assert_same_bits(exact_ensemble(net, cfg, X, chunk_size=2048, executor=pool), local)
    with ThreadPoolExecutor(3) as threads:
        assert_same_bits(exact_ensemble(net, cfg, X, chunk_size=2048, executor=threads), local)


def test_exact_ensemble_refuses_a_bad_executor_and_names_the_route():
    net, cfg, _ = NETS["generic"]
    X = np.ones((2, 4))
    with pytest.raises(TypeError, match=r"executor must be a concurrent.futures.Executor or a "
                                        r"dask.distributed.Client; got str"):
        exact_ensemble(net, cfg, X, executor="tcp://localhost:8786")
    with pytest.raises(ValueError, match=r"more than max_subnetworks=1,024.*executor=, a "
                                         r"concurrent.futures executor or a dask.distributed"):
        exact_ensemble(net, cfg, X, max_subnetworks=2**10)


@pytest.mark.parametrize("cfg", [DropoutConfig(0.5, [0, 2]),
                                 DropoutConfig({2: 0.3, 0: 0.8}, scheme="vanilla")])
def test_dropout_configs_pickle(cfg):
    """Configs reach worker processes (a per-layer mapping is a read-only proxy)."""
    back = pickle.loads(pickle.dumps(cfg))
    assert back == cfg and hash(back) == hash(cfg) and back.layers == cfg.layers


@pytest.mark.parametrize("chunk_size", [1, 3, 64, 1000])
def test_mask_chunk_rebuilds_each_chunk_of_the_enumeration(chunk_size):
    q = np.array([0.5, 1.0, 0.3, 0.9, 0.7, 1.0, 0.2, 0.6])
    chunks = list(enumerate_masks(q, chunk_size))
    assert len(chunks) == n_chunks(q, chunk_size) == math.ceil(2**6 / chunk_size)
    for i, (masks, log_probs) in enumerate(chunks):
        m, lp = mask_chunk(q, chunk_size, i)
        assert np.array_equal(m, masks) and lp.tobytes() == log_probs.tobytes()
    with pytest.raises(ValueError, match=r"index must be in \[0, "):
        mask_chunk(q, chunk_size, len(chunks))


def test_a_remote_scheduler_quiets_every_client_side_distributed_logger(monkeypatch):
    # A lost scheduler is one line (SchedulerLost); dask's client-side loggers would print
    # the same loss as tracebacks: the client's at ERROR, its batched comm's at INFO.
    distributed = pytest.importorskip("distributed", reason="needs the [dask] extra")
    import logging

    from ensemble_study.executor import connect

    class FakeClient(distributed.Client):  # a Client that connects to nothing
        def __init__(self, address, timeout):
            self.address = address

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def __del__(self):
            pass

    monkeypatch.setattr(distributed, "Client", FakeClient)
    names = ["distributed.batched", "distributed.client", "distributed.core",
             "distributed.comm.tcp"]
    before = {n: logging.getLogger(n).getEffectiveLevel() for n in names}
    with connect(Execution(scheduler="tcp://127.0.0.1:1")) as ex:
        assert isinstance(ex.executor, FakeClient)
        for n in names:
            assert not logging.getLogger(n).isEnabledFor(logging.ERROR), n
    assert {n: logging.getLogger(n).getEffectiveLevel() for n in names} == before


@pytest.mark.parametrize("scheduler", ["tcp://127.0.0.1:1", "local"])
def test_a_dask_run_ended_by_ctrl_c_closes_quietly_and_restores_the_loggers(
        monkeypatch, scheduler):
    # Closing the client and cluster after a Ctrl-C logs the interrupt again as tracebacks
    # (distributed's, and callbacks on its tornado loop): quiet while they close, and
    # every logger's level restored afterwards.
    distributed = pytest.importorskip("distributed", reason="needs the [dask] extra")
    import logging

    from ensemble_study import executor

    names = executor._DASK_LOGGERS + ("distributed.batched",)
    before = {n: logging.getLogger(n).level for n in names}
    seen = {}

    class FakeClient(distributed.Client):  # a Client that connects to nothing
        def __init__(self, address, timeout=None):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            seen["closing"] = {n: logging.getLogger(n).isEnabledFor(logging.ERROR)
                               for n in names}
            return False

        def __del__(self):
            pass

    class FakeCluster:
        def __init__(self, **kw):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(distributed, "Client", FakeClient)
    monkeypatch.setattr(distributed, "LocalCluster", FakeCluster)
    with pytest.raises(KeyboardInterrupt):
        with executor.connect(Execution(jobs=2, scheduler=scheduler)):
            raise KeyboardInterrupt
    assert not any(seen["closing"].values()), seen["closing"]
    assert {n: logging.getLogger(n).level for n in names} == before

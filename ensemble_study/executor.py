"""Where the cells of a study run: this process, a local process pool, or Dask.

Every study is a list of independent cells in grid order (its
``cells(params)``), each turned into rows by a top-level, picklable
``run_cell(cell, params) -> list[dict]``. :func:`map_cells` runs them on the
executor an :class:`Execution` names and returns every row in grid order.
Each cell draws from its own stream, fixed by its grid position
(``SeedSequence(seed).spawn``), so the rows, and the CSV written from them,
are the same to the byte whatever the executor, the number of workers or the
order in which cells finish.

With a store (``Execution.store``, the CLI's ``results/.cells/``), each
finished cell is written at once to its own small CSV, keyed by the study,
its parameters, the package version and a digest of its source; a rerun with the same parameters
reads the finished cells back instead of recomputing them. Floats are stored
as their shortest round-trip repr, so a resumed study's rows are the
uninterrupted one's, bit for bit.

Worker processes run ``exact_ensemble`` on one thread
(``ENSEMBLE_STUDY_THREADS=1``, read by ``kernels.default_threads``) and hold
BLAS to one thread: the workers already share the cores.

(Over 500 lines: the cell store, the process pool and Dask share one
Execution and one ordering rule, and their fault handling (checksums, locks,
signals, a lost scheduler) is read together.)
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import functools
import hashlib
import io
import json
import logging
import math
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path

import pandas as pd

from .results import _pid_alive

THREADS_ENV = "ENSEMBLE_STUDY_THREADS"
DASK_EXTRA = "pip install -e '.[dask]'"
# A log line at least this often when stderr is not a terminal (and every 10%).
LOG_INTERVAL = 30.0
# Seconds to reach a running scheduler before giving up.
CONNECT_TIMEOUT = 10


def available_cores() -> int:
    """The CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


OVERSUBSCRIBE_ENV = "ENSEMBLE_STUDY_OVERSUBSCRIBE"


def capped_jobs(jobs: int) -> int:
    """``jobs`` capped at the cores this process may use, with a one-line note.

    Each worker holds its own copy of the package (about 250 MB) and more
    workers than cores only share them (measured 3x slower at 6 on 2). Set
    ``ENSEMBLE_STUDY_OVERSUBSCRIBE=1`` to start ``jobs`` workers anyway.
    """
    cores = available_cores()
    if jobs <= cores or os.environ.get(OVERSUBSCRIBE_ENV, "").strip() == "1":
        return jobs
    _note_cap(jobs, cores)
    return cores


@functools.cache
def _note_cap(jobs: int, cores: int) -> None:
    print(f"note: --jobs {jobs} capped at the {cores} core(s) this process may use "
          f"(set {OVERSUBSCRIBE_ENV}=1 to start {jobs} workers anyway)", file=sys.stderr)


def _alive(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie."""
    if not _pid_alive(pid):
        return False
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


WATCHDOG_PERIOD = 0.5


def _watchdog(main_pid: int) -> None:
    """In a pool worker: exit as soon as the main process is gone (whatever
    signal ended it, SIGKILL included), so that no worker outlives its study."""
    while True:
        time.sleep(WATCHDOG_PERIOD)
        if not _alive(main_pid):
            os._exit(1)


def require_dask():
    """Import ``dask.distributed``, or ``ImportError`` saying which extra installs it."""
    try:
        import distributed
    except ImportError as exc:
        raise ImportError(
            f"running on a Dask scheduler needs dask.distributed; install the extra: "
            f"{DASK_EXTRA}") from exc
    return distributed


@dataclasses.dataclass(frozen=True)
class Execution:
    """How :func:`map_cells` runs the cells of a study.

    Attributes
    ----------
    jobs : int or None
        Local worker processes (None: every core this process may use). With
        1, cells run one after another in this process.
    scheduler : str or None
        ``"local"`` starts a ``LocalCluster`` of ``jobs`` workers for the
        run; any other string is the address of a running
        ``dask.distributed`` scheduler. None runs locally (``jobs``).
    store : Path or None
        Root of the cell store (one folder per study and parameters); None
        stores nothing.
    fresh : bool
        Recompute every cell, ignoring (and overwriting) stored ones.
    executor : concurrent.futures.Executor or dask.distributed.Client, optional
        A live executor to use as it is, instead of ``jobs`` and
        ``scheduler`` (:func:`connect` sets it, so that several studies share
        one pool or cluster).
    """

    jobs: int | None = 1
    scheduler: str | None = None
    store: Path | None = None
    fresh: bool = False
    executor: object = dataclasses.field(default=None, repr=False, compare=False)

    def __post_init__(self):
        if self.jobs is not None and (isinstance(self.jobs, bool)
                                      or not isinstance(self.jobs, int) or self.jobs < 1):
            raise ValueError(f"jobs must be a positive integer or None (every core); "
                             f"got {self.jobs!r}")
        if self.scheduler is not None and (not isinstance(self.scheduler, str)
                                           or not self.scheduler.strip()):
            raise ValueError(f"scheduler must be None, 'local' or a scheduler address such "
                             f"as 'tcp://host:8786'; got {self.scheduler!r}")
        if self.executor is not None and not (_is_dask(self.executor) or isinstance(
                self.executor, concurrent.futures.Executor)):
            raise TypeError(f"executor must be a concurrent.futures.Executor or a "
                            f"dask.distributed.Client; got {type(self.executor).__name__}")
        if self.store is not None:
            object.__setattr__(self, "store", Path(self.store))
        if not isinstance(self.fresh, bool):
            raise TypeError(f"fresh must be a bool; got {self.fresh!r}")

    @property
    def n_workers(self) -> int:
        """Worker processes: ``jobs``, capped at :func:`available_cores` on this
        machine unless ``ENSEMBLE_STUDY_OVERSUBSCRIBE=1`` (a remote scheduler's
        workers are not capped)."""
        if self.jobs is None:
            return available_cores()
        if self.scheduler not in (None, "local"):
            return self.jobs
        return capped_jobs(self.jobs)


def _is_dask(executor) -> bool:
    return hasattr(executor, "scatter") and hasattr(executor, "submit")


# --- the cell store --------------------------------------------------------------

def _canonical(value):
    """Parameters as JSON-able values, tuples as lists, dataclasses as dicts."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _canonical(dataclasses.asdict(value))
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy scalar
        return value.item()
    if isinstance(value, Path):
        return str(value)
    return value


# pandas >= 3 parses floats exactly by default (and deprecates asking for it).
_ROUND_TRIP = {} if int(pd.__version__.split(".")[0]) >= 3 else {"float_precision": "round_trip"}


def _float_repr(x) -> str:
    # Shortest repr that reads back to the same float (and keeps "1.0" a float).
    return repr(float(x))


# Modules and folders that draw, print or dispatch but compute no cell's rows:
# editing them (a figure's title, a command's help) keeps the stored cells.
_PRESENTATION = frozenset({"cli", "plots.py", "report.py", "publish.py", "figure_text.py",
                           "tables.py", "study.py", "reproduce.py", "bench.py", "_bench_c.py",
                           "_roofline.py"})


def _source_files(depends: tuple[str, ...]) -> list[Path]:
    """The numeric core, plus the files of the modules in ``depends``."""
    root = Path(__file__).resolve().parent
    files = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        if rel.parts[0] in _PRESENTATION:
            continue
        if rel.parts[0] == "studies" and rel.as_posix() != "studies/_common.py":
            continue  # a study's cells depend on its own compute only (below)
        files.append(path)
    for name in depends:
        module = sys.modules.get(name)
        file = getattr(module, "__file__", None)
        if file is None:
            raise ValueError(f"depends: {name!r} is not an imported module with a source file")
        files.append(Path(file).resolve())
    return files


@functools.cache
def source_digest(depends: tuple[str, ...] = ()) -> str:
    """A digest of the source a study's cells depend on.

    Part of the store key beside the version, so that cells computed by other
    code (a development checkout between two releases) are never reused. It
    covers the numeric core (every module of the package but the drawing,
    printing and dispatching ones, and but the studies) and the modules in
    ``depends`` (a study's own compute module), not figure or report code.
    """
    digest = hashlib.sha256()
    root = Path(__file__).resolve().parent
    for path in _source_files(tuple(depends)):
        try:
            name = path.relative_to(root).as_posix()
        except ValueError:
            name = path.name
        digest.update(name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


class CellStore:
    """One folder of per-cell CSVs for one study, parameter set, version and source.

    The folder is named by the study and a digest of the parameters, the
    package version and :func:`source_digest`; its ``params.json`` spells
    them out.
    """

    def __init__(self, root, study: str, params: dict, depends: tuple[str, ...] = ()):
        from . import __version__

        self.meta = {"study": study, "version": __version__,
                     "source": source_digest(tuple(depends)),
                     "params": _canonical(params)}
        text = json.dumps(self.meta, sort_keys=True, allow_nan=True)
        key = hashlib.sha256(text.encode()).hexdigest()[:16]
        self.folder = Path(root) / f"{study}-{key}"

    def path(self, index: int) -> Path:
        return self.folder / f"cell-{index:06d}.csv"

    def load(self, index: int) -> list[dict] | None:
        """The stored rows of cell ``index``, or None if it must be computed.

        A cell file that does not verify (see :func:`_read_cell`) is not
        reused: a one-line warning on stderr names it, and the cell is
        computed again (and stored again over it).
        """
        path = self.path(index)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            _warn_cell(path, f"cannot be read ({exc.strerror or exc})")
            return None
        try:
            return _read_cell(data)
        except ValueError as exc:
            _warn_cell(path, str(exc))
            return None

    def save(self, index: int, rows: list[dict]) -> None:
        """Write cell ``index`` atomically (and, once, the folder's ``params.json``)."""
        from .results import atomic_write_bytes

        meta = self.folder / "params.json"
        if not meta.exists():
            atomic_write_bytes(meta, json.dumps(self.meta, indent=2, sort_keys=True).encode())
        atomic_write_bytes(self.path(index), _cell_bytes(rows))


# A cell file: one header line with the SHA-256 and row count of the CSV body
# that follows it (an empty body for a cell without rows).
_CELL_MAGIC = b"# ensemble-study cell v2"
_CELL_HEADER = re.compile(rb"# ensemble-study cell v2 rows=(\d+) sha256=([0-9a-f]{64})")


def _cell_bytes(rows: list[dict]) -> bytes:
    body = (pd.DataFrame(rows).to_csv(index=False, float_format=_float_repr).encode()
            if rows else b"")
    digest = hashlib.sha256(body).hexdigest()
    return _CELL_MAGIC + f" rows={len(rows)} sha256={digest}\n".encode() + body


def _read_cell(data: bytes) -> list[dict]:
    """The rows of a cell file's bytes; ``ValueError`` saying why they cannot be trusted."""
    if not data:
        raise ValueError("is empty (0 bytes)")
    head, sep, body = data.partition(b"\n")
    match = _CELL_HEADER.fullmatch(head)
    if not sep or match is None:
        what = ("a damaged header" if head.startswith(_CELL_MAGIC) else
                "no header with its hash and row count (damaged, or an unverified older cell)")
        raise ValueError(f"has {what}")
    n_rows, digest = int(match[1]), match[2].decode()
    if hashlib.sha256(body).hexdigest() != digest:
        raise ValueError(f"does not match its recorded SHA-256 ({len(body)} bytes after the "
                         f"header: truncated or edited)")
    if n_rows == 0:
        if body:
            raise ValueError("records 0 rows but holds data")
        return []
    try:
        df = pd.read_csv(io.BytesIO(body), keep_default_na=False, na_values=[""],
                         **_ROUND_TRIP)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise ValueError(f"is not a readable CSV ({exc})") from None
    if len(df) != n_rows:
        raise ValueError(f"holds {len(df)} rows, not the {n_rows} it records")
    return df.to_dict("records")


def _warn_cell(path: Path, reason: str) -> None:
    print(f"warning: stored cell {path} {reason}; recomputing it", file=sys.stderr, flush=True)


# --- progress ------------------------------------------------------------------------

def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s" if m else f"{s}s"


class Progress:
    """Units of work (cells, chunks, epochs) done out of a total, on stderr.

    On a terminal, click's progress bar. Otherwise (CI, nohup, a batch job)
    one line each time another 10% is done, and at least every ``interval``
    seconds while the work runs: done / total, elapsed time and an ETA from
    the rate of the units computed in this run. ``report``, if callable,
    replaces both: it is called ``report(n_done, n_total)`` after every
    unit. Every long loop of the package (a study's cells, an exact
    ensemble's chunks, training's epochs) reports through it.
    """

    def __init__(self, label: str, total: int, done: int = 0, report=True, *,
                 interval: float = LOG_INTERVAL, stream=None, unit: str = "cells"):
        self.label, self.total, self.done, self.reused = label, total, done, done
        self.unit = unit
        self.report, self.interval = report, interval
        self.stream = sys.stderr if stream is None else stream
        self.start = self.last = time.monotonic()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._bar = self._thread = None
        self._decile = math.floor(10 * done / total) if total else 10

    def __enter__(self):
        if self.report is True:
            if self.stream.isatty():
                import click

                self._bar = click.progressbar(length=self.total, label=self.label,
                                              file=self.stream).__enter__()
                self._bar.update(self.done)
            else:
                stored = f", {self.reused} from the store" if self.reused else ""
                self._line(f"{self.total} {self.unit}{stored}")
                self._thread = threading.Thread(target=self._heartbeat, daemon=True)
                self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self._bar is not None:
            self._bar.__exit__(*exc)
        return False

    def advance(self, n: int = 1) -> None:
        """``n`` more units done."""
        with self._lock:
            self.done += n
            if callable(self.report):
                self.report(self.done, self.total)
            elif self._bar is not None:
                self._bar.update(n)
            elif self.report:
                decile = math.floor(10 * self.done / self.total)
                if decile > self._decile:
                    self._decile = decile
                    self._line(self.status())

    def status(self) -> str:
        now = time.monotonic()
        elapsed = now - self.start
        computed, left = self.done - self.reused, self.total - self.done
        eta = _duration(elapsed / computed * left) if computed else "?"
        pct = 100 * self.done / self.total if self.total else 100
        return (f"{self.done}/{self.total} {self.unit} ({pct:.0f}%), {_duration(elapsed)} elapsed, "
                f"ETA {eta}")

    def _line(self, text: str) -> None:
        self.last = time.monotonic()
        print(f"[{self.label}] {text}", file=self.stream, flush=True)

    def _heartbeat(self) -> None:
        while not self._stop.wait(min(1.0, self.interval)):
            with self._lock:
                if time.monotonic() - self.last >= self.interval:
                    self._line(self.status())


# --- executors -------------------------------------------------------------------------

_worker_limits = None


def _init_worker(main_pid: int | None = None) -> None:
    """Pool worker set-up: one thread for exact_ensemble and for BLAS, and a
    watchdog on the main process (:func:`_watchdog`)."""
    global _worker_limits
    os.environ[THREADS_ENV] = "1"
    # Ctrl-C reaches the terminal's whole process group: the main process
    # handles it (and ends the pool); a worker that also raised
    # KeyboardInterrupt would print its own traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if main_pid is not None:
        threading.Thread(target=_watchdog, args=(main_pid,), daemon=True,
                         name="ensemble-study-watchdog").start()
    from threadpoolctl import threadpool_limits

    _worker_limits = threadpool_limits(limits=1)


def _serial(run_cell, todo, cells, params) -> Iterator:
    for i in todo:
        yield i, run_cell(cells[i], params)


def process_pool(n_workers: int) -> ProcessPoolExecutor:
    """A pool of ``n_workers`` processes, each on one thread (module docstring)."""
    import multiprocessing

    # forkserver: workers start from a clean process (no inherited threads or
    # numba/BLAS state), forked from a server that imported the package once.
    method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    ctx = multiprocessing.get_context(method)
    if method == "forkserver":
        ctx.set_forkserver_preload(["ensemble_study.studies._common"])
        _start_forkserver()
    return ProcessPoolExecutor(n_workers, mp_context=ctx, initializer=_init_worker,
                               initargs=(os.getpid(),))


@contextlib.contextmanager
def _pool(n_workers: int) -> Iterator[ProcessPoolExecutor]:
    """A :func:`process_pool` for one run: shut down when the run ends, and its
    workers ended at once if the run fails or is interrupted (no waiting for
    the cells they are computing)."""
    pool = process_pool(n_workers)
    try:
        yield pool
    except BaseException:
        end_pool(pool)
        raise
    pool.shutdown(wait=True)


def end_pool(pool: ProcessPoolExecutor, timeout: float = 5.0) -> None:
    """Cancel what is queued, end the workers (SIGTERM, then SIGKILL) and shut down."""
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        with contextlib.suppress(Exception):
            process.terminate()
    deadline = time.monotonic() + timeout
    for process in processes:
        with contextlib.suppress(Exception):
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()
                process.join(1.0)


@contextlib.contextmanager
def _sigint_ignored() -> Iterator[None]:
    """SIGINT ignored in this process while the block runs (processes started
    meanwhile inherit it across their exec); the main thread only."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


def _start_forkserver() -> None:
    """Start the forkserver with SIGINT ignored (inherited across its exec).

    The forkserver shields itself from Ctrl-C only once it has imported its
    preload (the package: seconds on a loaded machine); a Ctrl-C meanwhile
    printed its KeyboardInterrupt traceback. Its workers inherit the
    disposition too (the main process alone handles Ctrl-C and ends them).
    """
    from multiprocessing import forkserver

    with _sigint_ignored():
        forkserver.ensure_running()


@contextlib.contextmanager
def _sigint_deferred() -> Iterator[None]:
    """Hold a Ctrl-C until the block is done, then raise it.

    Submitting starts the pool's workers; a KeyboardInterrupt inside
    ``Process.start`` left a worker forked but unknown to the pool, which
    then failed in its start-up (a traceback) once the main process was gone.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught = []
    old = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)
    if caught:
        raise KeyboardInterrupt


def _futures(run_cell, todo, cells, params, pool) -> Iterator:
    futures = {}
    try:
        with _sigint_deferred():
            for i in todo:
                futures[pool.submit(run_cell, cells[i], params)] = i
    except BaseException:
        for future in futures:
            future.cancel()
        raise
    try:
        pending = set(futures)
        while pending:
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in sorted(finished, key=futures.get):
                yield futures[future], future.result()
    finally:
        for future in futures:
            future.cancel()


class SchedulerLost(ConnectionError):
    """The Dask scheduler went away during a run (one line; the stored cells remain)."""


def _threads_plugin():
    """A dask WorkerPlugin that sets ``ENSEMBLE_STUDY_THREADS=1`` while registered."""
    distributed = require_dask()

    class OneThread(distributed.WorkerPlugin):
        name = "ensemble-study-threads"

        def setup(self, worker):
            self.old = os.environ.get(THREADS_ENV)
            os.environ[THREADS_ENV] = "1"

        def teardown(self, worker):
            if self.old is None:
                os.environ.pop(THREADS_ENV, None)
            else:
                os.environ[THREADS_ENV] = self.old

    return OneThread()


@contextlib.contextmanager
def connect(execution: Execution) -> Iterator[Execution]:
    """The execution with a live executor, shared by every study run inside.

    ``scheduler="local"`` starts a ``LocalCluster`` of ``jobs``
    single-threaded worker processes, an address connects to a running
    scheduler, and ``jobs > 1`` starts a process pool; each is closed on
    exit. With ``jobs == 1`` (or a live executor already), the execution is
    returned as it is.
    """
    if execution.executor is not None or (execution.scheduler is None
                                           and execution.n_workers == 1):
        yield execution
        return
    with contextlib.ExitStack() as quiet, contextlib.ExitStack() as stack:
        if execution.scheduler is None:
            live = stack.enter_context(_pool(execution.n_workers))
        else:
            distributed = require_dask()
            if execution.scheduler == "local":
                # Workers started with SIGINT ignored (inherited across their exec):
                # a Ctrl-C is the main process's to handle; each worker printed a
                # KeyboardInterrupt traceback. (A Ctrl-C while they start is lost.)
                with _sigint_ignored():
                    cluster = stack.enter_context(distributed.LocalCluster(
                        n_workers=execution.n_workers, threads_per_worker=1, processes=True,
                        dashboard_address=None))
                live = stack.enter_context(distributed.Client(cluster))
            else:
                # A lost scheduler is reported in one line (SchedulerLost); the
                # client's own reconnect and close, and its batched comm (at INFO, on
                # the "distributed" logger's handler), log the same loss as tracebacks.
                # "distributed.client" has a level of its own in dask's config.
                # On ``quiet``: restored after the client closes, and after the loggers
                # quieted below (whose saved level is this one's CRITICAL).
                quiet.enter_context(_quiet_logger("distributed"))
                quiet.enter_context(_quiet_logger("distributed.client"))
                try:
                    client = distributed.Client(execution.scheduler, timeout=CONNECT_TIMEOUT)
                except (OSError, TimeoutError, ValueError) as exc:
                    raise ConnectionError(f"no dask scheduler reachable at "
                                          f"{execution.scheduler!r}: {exc}") from exc
                live = stack.enter_context(client)
        try:
            yield dataclasses.replace(execution, executor=live)
        except BaseException:
            if execution.scheduler is not None:
                # A run that ends by Ctrl-C or a lost scheduler is reported in one line;
                # closing the client and the cluster (``stack``, closed before ``quiet``)
                # logs the same end as tracebacks, from distributed and from callbacks
                # on its tornado loop.
                for name in _DASK_LOGGERS:
                    quiet.enter_context(_quiet_logger(name))
            raise


_DASK_LOGGERS = ("distributed", "distributed.client", "tornado", "tornado.application")


@contextlib.contextmanager
def _quiet_logger(name: str):
    """Hold logger ``name`` to CRITICAL for the block (restored after)."""
    log = logging.getLogger(name)
    level = log.level
    log.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        log.setLevel(level)


def _dask(run_cell, todo, cells, params, client) -> Iterator:
    distributed = require_dask()
    plugin = _threads_plugin()
    # In-process workers (LocalCluster(processes=False)) share this process's
    # environment, and their teardowns may run in any order: restore it here.
    ours = os.environ.get(THREADS_ENV)
    client.register_plugin(plugin)
    futures = {}
    try:
        [params_future] = client.scatter([params], broadcast=True, hash=False)
        for i in todo:
            futures[client.submit(run_cell, cells[i], params_future, pure=False)] = i
        for future in distributed.as_completed(futures):
            try:
                rows = future.result()
            except (concurrent.futures.CancelledError, distributed.comm.CommClosedError) as exc:
                where = getattr(client, "scheduler", None)
                where = getattr(where, "address", None) or "the scheduler"
                reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(
                    exc).__name__
                raise SchedulerLost(
                    f"lost the dask scheduler at {where} ({reason}); the cells finished so "
                    f"far are stored: rerun the same command, with a running scheduler, to "
                    f"resume") from None
            yield futures[future], rows
    finally:
        client.cancel(list(futures))
        with contextlib.suppress(Exception):
            client.unregister_worker_plugin(plugin.name)
        if ours is None:
            os.environ.pop(THREADS_ENV, None)
        else:
            os.environ[THREADS_ENV] = ours


def map_cells(study: str, run_cell: Callable[[object, dict], list[dict]], cells: Sequence,
              params: dict, *, execution: Execution | None = None,
              progress=False, depends: Sequence[str] = ()) -> list[dict]:
    """Rows of every cell, in grid order, however and wherever the cells ran.

    Parameters
    ----------
    study : str
        The study's name (progress label, store key).
    run_cell : callable
        Top-level (picklable) ``run_cell(cell, params) -> list[dict]``.
    cells : sequence
        Picklable cell descriptors, in grid order.
    params : dict
        The study's validated parameters, passed to every cell.
    execution : Execution, optional
        Where to run and what to store; by default one cell after another
        in this process, storing nothing.
    progress : bool or callable
        Report progress on stderr (see :class:`Progress`); a callable gets
        ``(n_done, n_total)`` after every computed cell, once the cell is
        stored (raising from it interrupts the study).
    depends : sequence of str
        Modules (beyond the numeric core) whose source keys the stored cells:
        the study's compute module (see :func:`source_digest`).

    Returns
    -------
    list of dict
        The rows of cell 0, then cell 1, ...
    """
    execution = Execution() if execution is None else execution
    cells = list(cells)
    store = (None if execution.store is None
             else CellStore(execution.store, study, params, tuple(depends)))
    results: list = [None] * len(cells)
    if store is not None and not execution.fresh:
        results = [store.load(i) for i in range(len(cells))]
    todo = [i for i, rows in enumerate(results) if rows is None]
    if not todo:  # everything stored: start nothing
        execution = dataclasses.replace(execution, jobs=1, scheduler=None, executor=None)
    elif execution.executor is None and execution.scheduler is None:
        # At most one process per cell left; a single one runs here.
        execution = dataclasses.replace(execution, jobs=min(execution.n_workers, len(todo)))
    with connect(execution) as execution, \
            Progress(study, len(cells), len(cells) - len(todo), progress) as bar:
        live = execution.executor
        if live is None:
            finished = _serial(run_cell, todo, cells, params)
        elif _is_dask(live):
            finished = _dask(run_cell, todo, cells, params, live)
        else:
            finished = _futures(run_cell, todo, cells, params, live)
        with contextlib.closing(finished):
            for i, rows in finished:
                if store is not None:
                    store.save(i, rows)
                results[i] = rows
                bar.advance()
    return [row for rows in results for row in rows]

"""The compiled softmax kernel's shape, chosen per host by measurement.

The softmax contraction (:func:`.compiled._softmax_contract`) can do its
independent work in several orders that give the same bits (the tests check
that every shape does): ``tile`` steps of ``4 LANES`` low-half masks have
their reciprocals formed and contracted together (``0``: all of them, as one
tile), and ``fused`` contracts the mean and the second moment in one pass
over the reciprocals (16 vector accumulators: it fits a 32-register AVX-512
host, spills on a 16-register AVX2 one). Which order is fastest depends on
the host's registers, caches and divider, so it is measured, not guessed:

* on first use in a process, when the call is large enough that a short
  calibration is a small part of it (:data:`CALIBRATE_WORK`), every
  candidate shape is timed on a bench-sized problem in alternating rounds,
  and the shape of the smallest median wins;
* the choice is cached in a JSON file beside the compiled kernels (numba's
  cache: ``NUMBA_CACHE_DIR`` when set, else this package's ``__pycache__``),
  keyed by the CPU model, its flags, the vector width, the package version
  and a hash of the kernels' source, so another host, an upgrade or an edit
  of the kernels calibrates again;
* without a calibration (small calls, inside the test suite) the shape is
  :func:`default_shape`, from the vector width alone; an unwritable cache
  keeps the calibrated choice for the process only.

The environment variable ``ENSEMBLE_STUDY_KERNEL_SHAPE`` overrides all of
this: ``tile=T,fused=F`` (integers) for one shape, ``default`` for
:func:`default_shape` without calibration, ``calibrate`` to measure again
now (and rewrite the cache).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import statistics
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

ENV_VAR = "ENSEMBLE_STUDY_KERNEL_SHAPE"
# Subnetwork-example pairs of a call above which calibrating (about 0.3 s,
# once per host) is worth it: about 2 s of the softmax kernel.
CALIBRATE_WORK = 2**28
_ROUNDS = 9


@dataclass(frozen=True)
class Shape:
    """Order of the softmax contraction's independent work (see the module docstring).

    Parameters
    ----------
    tile : int
        Steps of ``4 LANES`` low-half masks per tile; 0 for all in one tile.
    fused : int
        1 to contract the mean and the second moment in one pass, else 0.
    """

    tile: int = 0
    fused: int = 0

    def __post_init__(self):
        for name in ("tile", "fused"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"Shape.{name} must be a non-negative int; got {value!r}")
        if self.fused > 1:
            raise ValueError(f"Shape.fused must be 0 or 1; got {self.fused!r}")

    def __str__(self) -> str:
        return f"tile={self.tile},fused={self.fused}"


CANDIDATES = tuple(Shape(t, f) for f in (0, 1) for t in (0, 1))

_lock = threading.Lock()
_chosen: dict = {}  # "shape" and "source" once decided in this process


def default_shape() -> Shape:
    """The shape from the vector width alone: fused where there are 32 vector
    registers (AVX-512), one tile."""
    from ._simd import LANES

    return Shape(0, 1 if LANES == 8 else 0)


def parse(text: str) -> Shape:
    """A shape from ``"tile=T,fused=F"`` (either may be left out)."""
    fields = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = part.partition("=")
        name = name.strip()
        if not sep or name not in ("tile", "fused") or not value.strip().isdigit():
            raise ValueError(
                f"{ENV_VAR} must be 'default', 'calibrate' or 'tile=T,fused=F' with "
                f"non-negative integers T and F in 0..1; got {text!r}")
        fields[name] = int(value)
    return Shape(**fields)


def host_key() -> str:
    """What the choice depends on: CPU model and flags, vector width, package
    version, kernel source; as a short hash (and the readable parts)."""
    return _key_parts()[0]


def _key_parts():
    from .. import __version__
    from ._simd import LANES

    model, flags = platform.processor() or platform.machine(), ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            name, _, value = line.partition(":")
            if name.strip() == "model name" and model in ("", platform.machine()):
                model = value.strip()
            elif name.strip() == "flags" and not flags:
                flags = value.strip()
    except OSError:
        pass
    here = Path(__file__).resolve().parent
    source = hashlib.sha256()
    for name in ("compiled.py", "_simd.py", "shape.py"):
        source.update((here / name).read_bytes())
    parts = {"cpu": model, "flags": hashlib.sha256(flags.encode()).hexdigest()[:12],
             "lanes": LANES, "version": __version__, "source": source.hexdigest()[:12]}
    key = hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]
    return key, parts


def cache_path() -> Path:
    """The JSON file of calibrated shapes (beside numba's cache of the kernels)."""
    root = os.environ.get("NUMBA_CACHE_DIR")
    folder = Path(root) if root else Path(__file__).resolve().parent / "__pycache__"
    return folder / "ensemble_study_kernel_shape.json"


def _read_cache() -> dict:
    try:
        data = json.loads(cache_path().read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_cache(key: str, entry: dict) -> None:
    path = cache_path()
    data = _read_cache()
    data[key] = entry
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
        os.replace(tmp, path)
    except OSError:  # read-only install: the choice holds for this process only
        pass


def calibration_problem(n: int = 12, K: int = 10, pairs: int = 256, *, rng=0):
    """A bench-sized softmax problem: ``(A, sW, bias, q)`` (an 8-12-12-10 net's last
    layer: ``n`` dropped units, ``K`` classes, ``pairs`` activations)."""
    import numpy as np

    gen = np.random.default_rng(rng)
    A = np.ascontiguousarray(np.maximum(gen.normal(size=(pairs, n)), 0.0))
    sW = np.ascontiguousarray(gen.normal(size=(n, K)) * np.sqrt(2.0 / n) / 0.5)
    return A, sW, gen.normal(size=K) * 0.1, 0.5


def calibrate(candidates=CANDIDATES, rounds: int = _ROUNDS) -> tuple[Shape, dict]:
    """Time each candidate shape (mean and variance, alternating rounds); return
    the shape of the smallest median and the medians in seconds by shape."""
    import numpy as np

    from .compiled import _softmax_pairs_kernel

    A, sW, b, q = calibration_problem()
    mean, var = np.empty((A.shape[0], sW.shape[1])), np.empty((A.shape[0], sW.shape[1]))
    times = {s: [] for s in candidates}
    for shape in candidates:  # compile or load, and warm the caches
        _softmax_pairs_kernel(A[:2], sW, b, q, True, mean, var, shape.tile, shape.fused)
    for _ in range(rounds):
        for shape in candidates:
            start = time.perf_counter()
            _softmax_pairs_kernel(A, sW, b, q, True, mean, var, shape.tile, shape.fused)
            times[shape].append(time.perf_counter() - start)
    medians = {s: statistics.median(t) for s, t in times.items()}
    return min(medians, key=medians.get), medians


def current(work: float = 0.0) -> Shape:
    """The shape to run: the override, this process's choice, the cached one, a
    calibration (when ``work`` subnetwork-example pairs reach
    :data:`CALIBRATE_WORK`), else :func:`default_shape`."""
    override = os.environ.get(ENV_VAR, "").strip().lower()
    if override and override not in ("default", "calibrate"):
        return parse(override)
    if override == "default":
        return default_shape()
    force = override == "calibrate"
    with _lock:
        if "shape" in _chosen and not (force and _chosen["source"] != "calibrated"):
            return _chosen["shape"]
        key, parts = _key_parts() if "key" not in _chosen else _chosen["key"]
        _chosen["key"] = key, parts
        if not force and "looked" not in _chosen:
            _chosen["looked"] = True  # the file is read once per process
            cached = _read_cache().get(key)
            try:
                _chosen.update(shape=Shape(**cached["shape"]), source="cached",
                               medians=dict(cached.get("medians_s", {})))
                return _chosen["shape"]
            except (KeyError, TypeError, ValueError):
                pass  # no entry, or a damaged one: measure when worth it
        # Never measured by surprise inside the test suite (it would slow it; only
        # the override forces it there).
        if not force and (work < CALIBRATE_WORK or "PYTEST_CURRENT_TEST" in os.environ):
            return default_shape()
        shape, medians = calibrate()
        _write_cache(key, {"shape": asdict(shape), **parts,
                           "medians_s": {str(s): m for s, m in medians.items()}})
        _chosen.update(shape=shape, source="calibrated", medians=medians)
        return shape


def describe() -> str:
    """One line: the shape in use and where it came from."""
    shape = current()
    override = os.environ.get(ENV_VAR, "").strip()
    if override and override.lower() != "calibrate":
        source = f"from {ENV_VAR}={override}"
    else:
        source = {"cached": f"calibrated on this host, cached in {cache_path()}",
                  "calibrated": "calibrated on this host in this process"}.get(
                      _chosen.get("source"), "default for the vector width, not calibrated")
    text = f"softmax kernel shape {shape} ({source})"
    if _chosen.get("medians") and not override:
        best = min(_chosen["medians"].values())
        text += "; medians vs best: " + ", ".join(
            f"{s} {m / best:.2f}x" for s, m in _chosen["medians"].items())
    return text

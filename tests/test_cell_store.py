"""A cell store that cannot be fooled, and result pairs that always agree (issue 22, item 3).

Each stored cell carries the SHA-256 of its CSV body and its row count; a
cell that does not verify (emptied, truncated, random bytes, an edited
number, a dropped column, an old unverified file) is recomputed with a
one-line warning naming it, and the study's CSV is the same bytes as an
undamaged run's. A sidecar without a hash is refused for reading;
``save_result`` to one path from several threads or processes always
leaves a CSV and sidecar that agree.
"""

import hashlib
import json
import multiprocessing
import threading

import numpy as np
import pandas as pd
import pytest

from ensemble_study.executor import CellStore, Execution
from ensemble_study.results import load_params, load_result, rehash, save_result
from ensemble_study.studies import sweep

TINY = dict(activations=("relu",), outputs=("sigmoid", "softmax"), keep_probs=(0.3, 1.0),
            width=3, depth=2, n_features=3, n_inputs=4, n_networks=2, seed=1)


def csv_bytes(df):
    return df.to_csv(index=False, float_format="%.17g").encode()


@pytest.fixture(scope="module")
def clean():
    return csv_bytes(sweep.STUDY.run(**TINY))


def _edit_number(data: bytes) -> bytes:
    lines = data.split(b"\n")
    row = lines[2].split(b",")  # line 0: the cell header; 1: CSV header; 2: first row
    for j, field in enumerate(row):
        try:
            value = float(field)
        except ValueError:
            continue
        if value not in (0.0, 1.0) and np.isfinite(value):
            row[j] = repr(value * 1.5).encode()
            break
    lines[2] = b",".join(row)
    return b"\n".join(lines)


def _drop_column(data: bytes) -> bytes:
    lines = data.split(b"\n")
    return b"\n".join([lines[0]] + [b",".join(line.split(b",")[:-1]) if line else line
                                    for line in lines[1:]])


DAMAGE = {
    "emptied": lambda data: b"",
    "truncated": lambda data: data[: len(data) // 2],
    "random bytes": lambda data: bytes(np.random.default_rng(0).integers(0, 256, len(data),
                                                                          dtype=np.uint8)),
    "edited number": _edit_number,
    "dropped column": _drop_column,
    "header only": lambda data: b"\n".join(data.split(b"\n")[:2]) + b"\n",
    "no cell header (old format)": lambda data: data.split(b"\n", 1)[1],
}


@pytest.mark.parametrize("how", list(DAMAGE))
def test_a_damaged_cell_is_recomputed_with_a_warning(how, clean, tmp_path, capfd):
    execution = Execution(jobs=1, store=tmp_path)
    assert csv_bytes(sweep.STUDY.run(**TINY, execution=execution)) == clean
    cells = sorted(tmp_path.glob("sweep-*/cell-*.csv"))
    assert len(cells) == 4
    victim = cells[1]
    victim.write_bytes(DAMAGE[how](victim.read_bytes()))
    capfd.readouterr()
    computed = []
    again = sweep.STUDY.run(**TINY, execution=execution,
                            progress=lambda done, total: computed.append(done))
    err = capfd.readouterr().err
    assert csv_bytes(again) == clean, how
    assert len(computed) == 1, how  # only the damaged cell was recomputed
    lines = [line for line in err.splitlines() if victim.name in line]
    assert len(lines) == 1 and lines[0].startswith("warning:") and "recomput" in lines[0], err
    assert str(victim) in lines[0]
    # Recomputed and stored again: the next run reuses it silently.
    capfd.readouterr()
    assert csv_bytes(sweep.STUDY.run(**TINY, execution=execution)) == clean
    assert "warning" not in capfd.readouterr().err


def test_a_cell_file_records_its_hash_and_rows(tmp_path):
    store = CellStore(tmp_path, "toy", {})
    store.save(0, [{"a": 1, "b": 0.5}, {"a": 2, "b": np.nan}])
    store.save(1, [])
    head, body = store.path(0).read_bytes().split(b"\n", 1)
    assert b"rows=2" in head and hashlib.sha256(body).hexdigest().encode() in head
    assert b"rows=0" in store.path(1).read_bytes()
    assert store.load(1) == [] and len(store.load(0)) == 2


def test_an_empty_cell_emptied_to_zero_bytes_is_not_an_empty_cell(tmp_path, capfd):
    store = CellStore(tmp_path, "toy", {})
    store.save(0, [{"a": 1}])
    store.path(0).write_bytes(b"")
    assert store.load(0) is None
    assert "cell-000000.csv" in capfd.readouterr().err


# --- sidecars -------------------------------------------------------------------------

def _table(k=0):
    return pd.DataFrame({"k": np.arange(5) + k, "x": np.linspace(0, 1, 5) * (k + 1)})


def test_a_sidecar_without_a_hash_is_refused(tmp_path):
    path = save_result(_table(), tmp_path / "r.csv", {})
    side = tmp_path / "r.json"
    meta = json.loads(side.read_text())
    del meta["csv_sha256"]
    side.write_text(json.dumps(meta))
    path.write_bytes(path.read_bytes().replace(b"0.25", b"0.35"))  # an edit it cannot see
    with pytest.raises(ValueError, match=r"r\.json.*no csv_sha256.*rehash"):
        load_result(path)


def test_a_csv_without_a_sidecar_is_refused(tmp_path):
    path = tmp_path / "r.csv"
    _table().to_csv(path, index=False)
    with pytest.raises(ValueError, match=r"r\.csv.*no sidecar"):
        load_result(path)


def test_rehash_records_the_hash_and_warns(tmp_path, capfd):
    path = save_result(_table(), tmp_path / "r.csv", {"seed": 3})
    side = tmp_path / "r.json"
    meta = json.loads(side.read_text())
    del meta["csv_sha256"], meta["rows"]
    side.write_text(json.dumps(meta))
    before = path.read_bytes()
    rehash(path)
    assert "warning" in capfd.readouterr().err
    assert path.read_bytes() == before
    assert load_params(path)["params"] == {"seed": 3} and load_params(path)["rows"] == 5
    pd.testing.assert_frame_equal(load_result(path), _table())


def test_a_sidecar_whose_row_count_disagrees_is_refused(tmp_path):
    path = save_result(_table(), tmp_path / "r.csv", {})
    side = tmp_path / "r.json"
    meta = json.loads(side.read_text())
    meta["rows"] = 7
    side.write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=r"r\.csv.*5 rows.*7"):
        load_result(path)


def _agree(path):
    data = path.read_bytes()
    return hashlib.sha256(data).hexdigest() == load_params(path)["csv_sha256"]


def test_concurrent_saves_from_threads_leave_an_agreeing_pair(tmp_path):
    path = tmp_path / "r.csv"
    for _ in range(20):
        barrier = threading.Barrier(8)

        def write(k, barrier=barrier):
            barrier.wait()
            save_result(_table(k), path, {"k": k})

        threads = [threading.Thread(target=write, args=(k,)) for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert _agree(path)
        k = load_params(path)["params"]["k"]
        pd.testing.assert_frame_equal(load_result(path), _table(k), check_dtype=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.csv", "r.json"]


def _save_many(path, k, n):
    for i in range(n):
        save_result(_table(k * 100 + i), path, {"k": k * 100 + i})


def test_concurrent_saves_from_processes_leave_an_agreeing_pair(tmp_path):
    path = tmp_path / "r.csv"
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_save_many, args=(path, k, 15)) for k in range(4)]
    for p in procs:
        p.start()
    seen = 0
    while any(p.is_alive() for p in procs):
        try:
            load_result(path)  # a reader during the writes never sees a disagreeing pair
            seen += 1
        except FileNotFoundError:
            pass
    for p in procs:
        p.join()
        assert p.exitcode == 0
    assert _agree(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.csv", "r.json"]

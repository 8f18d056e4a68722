"""The Dask benchmark (bench/dask_memory.py) at a tiny size: it still runs, and both methods agree.

    python bench/dask_memory.py          # the real run: an array 4x a worker's memory limit
"""
import pytest


def test_dask_memory(smoke):
    pytest.importorskip("distributed")
    import dask_memory

    rows, setting = dask_memory.run(repeat=1 if smoke else 3, progress=lambda *a: None, n=30000 if smoke else None)
    assert [r[0] for r in rows] == ["lossk.dask.cross_entropy", "NumPy by da.map_blocks"]
    values = list(setting["values"].values())
    assert values[0] == pytest.approx(values[1], rel=1e-5)
    assert smoke or setting["bytes"] >= 4 * setting["limit"] - 4 * 1000

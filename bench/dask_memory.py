"""A cross-entropy mean over an array four times larger than a Dask worker's memory limit.

    python bench/dask_memory.py                  # 2 workers x 1 thread, 400 MB each, a 1.6 GB array
    python bench/dask_memory.py --limit-mb 1000  # the array is always 4x the limit

A LocalCluster of two worker processes (loopback, one thread each, ``memory_limit`` set) computes
``lossk.dask.cross_entropy`` of (N, 1000) float32 logits read block by block from a raw file (in
the page cache after the first pass) with targets made per block, against the same mean computed by
a NumPy implementation through ``da.map_blocks`` (per-block sums of log-sum-exp minus the target's
logit, float32 arithmetic with one block-sized temporary, sums in float64). Each method runs on freshly restarted workers, so each worker's peak resident
memory (``ru_maxrss``) is that method's; times are medians over --repeat runs. bench/report.py
prints the same rows as its "On Dask" section.
"""
import argparse
import os
import resource
import statistics
import sys
import tempfile
import time

import numpy as np

CLASSES = 1000
ROWS_PER_BLOCK = 8192          # 32 MB of float32 logits per block


def _load(path, start, rows, classes):
    return np.fromfile(path, dtype=np.float32, count=rows * classes, offset=start * classes * 4).reshape(rows, classes)


def _targets(block, rows, classes):
    return np.random.default_rng(block).integers(0, classes, rows)


def arrays(path, n, classes=CLASSES, rows=ROWS_PER_BLOCK):
    """(logits, targets) as Dask arrays whose blocks are read (made) by their tasks."""
    import dask.array as da
    from dask.highlevelgraph import HighLevelGraph

    starts = list(range(0, n, rows))
    sizes = [min(rows, n - s) for s in starts]
    x, t = f"logits-{os.path.basename(path)}-{n}", f"targets-{n}"
    gx = {(x, i, 0): (_load, path, s, r, classes) for i, (s, r) in enumerate(zip(starts, sizes))}
    gt = {(t, i): (_targets, i, r, classes) for i, r in enumerate(sizes)}
    return (da.Array(HighLevelGraph.from_collections(x, gx), x, (tuple(sizes), (classes,)), dtype=np.float32),
            da.Array(HighLevelGraph.from_collections(t, gt), t, (tuple(sizes),), dtype=np.int64))


def _numpy_block_sum(x, t):
    """A block's summed loss, in float32 with one block-sized temporary, the sums in float64."""
    t = t.reshape(-1)            # map_blocks hands it over as a column
    m = x.max(axis=1)
    z = x - m[:, None]
    np.exp(z, out=z)
    lse = m + np.log(z.sum(axis=1, dtype=np.float64))
    return np.array([(lse - x[np.arange(len(t)), t]).sum()])


def numpy_cross_entropy(x, t):
    """The NumPy-on-Dask way: a per-block sum by map_blocks, their sum, over N."""
    import dask.array as da

    sums = da.map_blocks(_numpy_block_sum, x, t[:, None], drop_axis=1, chunks=((1,) * x.numblocks[0],),
                         dtype=np.float64)
    return sums.sum() / x.shape[0]


def write_logits(path, n, classes=CLASSES, rows=ROWS_PER_BLOCK):
    rng = np.random.default_rng(0)
    with open(path, "wb") as f:
        for s in range(0, n, rows):
            rng.normal(0, 2, (min(rows, n - s), classes)).astype(np.float32).tofile(f)


def _peak_rss():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def run(limit_mb=400, repeat=3, directory=None, progress=print, n=None):
    """Rows (method, median seconds, every time, peak worker RSS in bytes) and the setting; n rows
    of logits (default: 4x limit_mb)."""
    import distributed

    import lossk.dask

    n = n or (4 * limit_mb * 2 ** 20) // (CLASSES * 4)
    with tempfile.TemporaryDirectory(dir=directory) as tmp:
        path = os.path.join(tmp, "logits.f32")
        progress(f"writing {n} x {CLASSES} float32 logits ({n * CLASSES * 4 / 2 ** 30:.2f} GiB)")
        write_logits(path, n)
        cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                           memory_limit=f"{limit_mb}MB", dashboard_address=None)
        rows, values = [], {}
        try:
            with distributed.Client(cluster) as client:
                x, t = arrays(path, n)
                methods = {"lossk.dask.cross_entropy": lambda: lossk.dask.cross_entropy(x, t),
                           "NumPy by da.map_blocks": lambda: numpy_cross_entropy(x, t)}
                for name, build in methods.items():
                    client.restart()
                    times = []
                    for _ in range(repeat):
                        start = time.perf_counter()
                        values[name] = float(build().compute())
                        times.append(time.perf_counter() - start)
                    peak = max(client.run(_peak_rss).values())
                    progress(f"{name}: {statistics.median(times):.3f} s, peak worker RSS {peak / 2 ** 20:.0f} MiB")
                    rows.append((name, statistics.median(times), times, peak))
        finally:
            cluster.close()
    setting = {"rows": n, "classes": CLASSES, "bytes": n * CLASSES * 4, "limit": limit_mb * 2 ** 20,
               "blocks": -(-n // ROWS_PER_BLOCK), "values": values}
    return rows, setting


def markdown(rows, setting):
    lines = [f"Cross-entropy mean of ({setting['rows']}, {setting['classes']}) float32 logits "
             f"({setting['bytes'] / 2 ** 30:.2f} GiB, {setting['blocks']} blocks) on a LocalCluster of 2 workers x "
             f"1 thread with memory_limit {setting['limit'] / 2 ** 20:.0f} MiB each "
             f"({setting['bytes'] / setting['limit']:.1f}x a worker's limit):", "",
             "| method | median time | vs lossk | peak worker RSS |", "|---|---|---|---|"]
    base = rows[0][1]
    for name, median, _, peak in rows:
        lines.append(f"| {name} | {median:.3f} s | {median / base:.2f}x | {peak / 2 ** 20:.0f} MiB |")
    v = list(setting["values"].values())
    lines += ["", f"Both give {v[0]:.7g} (relative difference {abs(v[0] - v[1]) / abs(v[1]):.1e})."]
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--limit-mb", type=int, default=400, help="each worker's memory_limit (the array is 4x it)")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--dir", default=None, help="where the logits file goes (default: the temporary directory)")
    args = p.parse_args()
    print(markdown(*run(args.limit_mb, args.repeat, args.dir, progress=lambda *a: print(*a, file=sys.stderr))))


if __name__ == "__main__":
    main()

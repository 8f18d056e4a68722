"""The cache of freed result arrays (lossk/_result_cache.h): reuse, limits, eviction, threads."""
import os
import threading

import numpy as np
import pytest

import lossk

MIB = 2 ** 20
ROWS = 512   # (512, 1024) float32: 2 MiB, above the cache's 1 MiB threshold


@pytest.fixture
def cache():
    """An empty cache at the default limit, restored (and emptied) afterwards."""
    old = lossk.set_result_cache_limit(0)
    lossk.set_result_cache_limit(old)
    yield old
    lossk.set_result_cache_limit(0)
    lossk.set_result_cache_limit(old)


def inputs(rows=ROWS, dtype=np.float32, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((rows, 1024)).astype(dtype), rng.standard_normal((rows, 1024)).astype(dtype)


def address(a):
    return a.__array_interface__["data"][0]


def test_freed_gradient_is_reused_and_recomputed(cache):
    x, t = inputs()
    first = lossk.mse_loss_grad(x, t)
    where, expected = address(first), first.copy()
    del first
    assert lossk.result_cache_held() == x.nbytes
    second = lossk.mse_loss_grad(x, 2 * t)                   # takes the freed block back
    assert address(second) == where
    assert lossk.result_cache_held() == 0
    np.testing.assert_array_equal(second, lossk.mse_loss_grad(x, 2 * t, out=np.empty_like(x)))
    np.testing.assert_array_equal(lossk.mse_loss_grad(x, t), expected)


def test_live_results_never_share_memory(cache):
    x, t = inputs()
    grads = [lossk.l1_loss_grad(x, t * k) for k in range(3)]
    losses = [lossk.l1_loss(x, t * k, reduction="none") for k in range(3)]
    assert len({address(a) for a in grads + losses}) == 6
    for k in range(3):
        np.testing.assert_array_equal(losses[k], np.abs(x - t * k))
        np.testing.assert_array_equal(grads[k], np.sign(x - t * k).astype(x.dtype) / x.size)


def test_every_allocating_path_goes_through_the_cache(cache):
    x, t = inputs(dtype=np.float64)
    labels = np.zeros(ROWS, np.int64)
    results = [lossk.huber_loss_with_grad(x, t)[1], lossk.kl_div(x, t, reduction="none"),
               lossk.cross_entropy_grad(x, labels), lossk.nll_loss_with_grad(x, labels)[1]]
    held = sum(r.nbytes for r in results)
    del results
    assert lossk.result_cache_held() == held


def test_small_results_bypass_the_cache(cache):
    g = lossk.mse_loss_grad(*inputs(rows=8))
    del g
    assert lossk.result_cache_held() == 0


def test_limit_evicts_the_oldest_and_zero_frees_all(cache):
    sizes = [ROWS + 16 * k for k in range(10)]              # ten distinct sizes
    results = [lossk.mse_loss_grad(*inputs(rows)) for rows in sizes]
    nbytes = [r.nbytes for r in results]
    for k in range(len(results)):                            # freed oldest first
        results[k] = None
    assert lossk.result_cache_held() == sum(nbytes[-8:])     # 8 slots: the two oldest freed
    lossk.set_result_cache_limit(sum(nbytes[-3:]))
    assert lossk.result_cache_held() == sum(nbytes[-3:])
    assert lossk.set_result_cache_limit(0) == sum(nbytes[-3:])
    assert lossk.result_cache_held() == 0
    g = lossk.mse_loss_grad(*inputs())
    del g
    assert lossk.result_cache_held() == 0                    # off: nothing kept


def test_block_larger_than_the_limit_is_not_kept(cache):
    lossk.set_result_cache_limit(MIB)
    g = lossk.mse_loss_grad(*inputs())                       # 2 MiB
    del g
    assert lossk.result_cache_held() == 0


def test_resized_result_is_freed_safely(cache):
    g = lossk.mse_loss_grad(*inputs())
    g.resize(ROWS * 1024 * 2, refcheck=False)                # realloc through the handler
    g[-1] = 1.0
    del g
    assert lossk.result_cache_held() in (0, ROWS * 1024 * 2 * 4)


def test_threads_allocating_and_freeing_concurrently(cache, restore_threads):
    lossk.set_num_threads(1)
    x, t = inputs()
    expected = lossk.smooth_l1_loss_grad(x, t)
    failures = []

    def work(seed):
        rows = ROWS // 2 + 64 * (seed % 3)                   # 1 to 1.5 MiB: cached too
        xs, ts = x[:rows], t[:rows]
        for _ in range(30):
            g = lossk.smooth_l1_loss_grad(x, t)
            if not np.array_equal(g, expected):
                failures.append(seed)
            lossk.smooth_l1_loss_grad(xs, ts)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not failures
    assert 0 < lossk.result_cache_held() <= cache


def handler_name(a):
    multiarray = getattr(np, "_core", np.core).multiarray
    return multiarray.get_handler_name(a)


def test_only_large_results_come_from_the_cache(cache):
    x, t = inputs()
    assert handler_name(lossk.mse_loss_grad(x, t)) == "lossk_result_cache"
    assert handler_name(lossk.mse_loss_grad(x[:8], t[:8])) == "default_allocator"
    assert handler_name(np.empty_like(x)) == "default_allocator"       # NumPy's own are untouched


def test_block_keeps_its_own_size_whatever_numpy_says_at_free(cache):
    """A failed __setstate__ leaves an array reporting more bytes than it owns (NumPy 2.4); the
    block must go back into the cache as the size it really has."""
    g = lossk.mse_loss_grad(*inputs())
    with pytest.raises(ValueError):
        g.__setstate__((1, g.shape, np.dtype(np.float64), False, b"xx"))
    if g.nbytes == 2 * ROWS * 1024 * 4:                      # NumPy now claims twice the bytes
        del g
        assert lossk.result_cache_held() == ROWS * 1024 * 4
        bigger = lossk.mse_loss_grad(*inputs(rows=2 * ROWS))  # not served from the smaller block
        bigger[...] = 1.0
        assert lossk.result_cache_held() == ROWS * 1024 * 4


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
# JAX, when another test module has imported it, warns of its threads at any fork; the child runs lossk only
@pytest.mark.filterwarnings("ignore:os.fork:RuntimeWarning")
def test_forked_child_uses_the_cache(cache, restore_threads):
    lossk.set_num_threads(1)                                 # no OpenMP in the child
    x, t = inputs()
    g = lossk.mse_loss_grad(x, t)
    del g                                                    # a block waits, inherited by the child
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            g = lossk.mse_loss_grad(x, t)
            same = np.array_equal(g, lossk.mse_loss_grad(x, t, out=np.empty_like(x)))
            del g
            code = 0 if same and lossk.result_cache_held() == x.nbytes else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


@pytest.mark.parametrize("bad, error", [(-1, ValueError), (1.5, TypeError), ("1", TypeError),
                                        (True, TypeError), (None, TypeError)])
def test_bad_limit_is_refused_and_changes_nothing(cache, bad, error):
    with pytest.raises(error, match="nbytes"):
        lossk.set_result_cache_limit(bad)
    assert lossk.set_result_cache_limit(cache) == cache


def test_limit_accepts_integer_types(cache):
    assert lossk.set_result_cache_limit(np.int64(MIB)) == cache
    assert lossk.set_result_cache_limit(2 ** 80) == MIB      # clamped: no overflow

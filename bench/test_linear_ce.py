"""The linear + cross-entropy benchmark (bench/linear_ce.py): at a tiny size it still runs and the
three implementations agree; timed (pytest-benchmark) at a medium size beside PyTorch's paths.

    python bench/linear_ce.py          # the real run: (2048, 512, 32000) and (4096, 1024, 128256)
"""
import numpy as np
import pytest

import linear_ce


def test_linear_ce_script(smoke):
    pytest.importorskip("torch")
    shape = (64, 16, 300) if smoke else (512, 256, 8000)
    results = linear_ce.run([shape], repeat=1, progress=lambda *a: None)
    assert [impl for _, impl, _ in results] == linear_ce.IMPLS
    losses = [r["loss"] for _, _, r in results]
    assert losses == pytest.approx([losses[0]] * 3, rel=1e-5)
    text, checks = linear_ce.markdown(results)
    assert text.count("\n") == 4 and len(checks) == 2


def _callables(n, d, v):
    import torch
    import lossk
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, d), dtype=np.float32)
    w = rng.standard_normal((v, d), dtype=np.float32) / np.float32(np.sqrt(d))
    t = rng.integers(0, v, n)
    X, W, T = torch.from_numpy(x).requires_grad_(), torch.from_numpy(w).requires_grad_(), torch.from_numpy(t)

    def torch_step(options):
        X.grad = W.grad = None
        torch.nn.functional.linear_cross_entropy(X, W, T, options=options).backward()

    return {"lossk": lambda: lossk.linear_cross_entropy_with_grad(x, w, t),
            "torch reference": lambda: torch_step(None),
            "torch chunked": lambda: torch_step(torch.nn.LinearCrossEntropyOptions())}


@pytest.mark.parametrize("impl", linear_ce.IMPLS)
def test_linear_ce(benchmark, impl, smoke):
    pytest.importorskip("torch")
    fn = _callables(*((64, 16, 300) if smoke else (1024, 512, 32000)))[impl]
    benchmark.group = "linear_cross_entropy fwd+bwd"
    if smoke:
        benchmark.pedantic(fn, rounds=2, iterations=1, warmup_rounds=1)
    else:
        benchmark.pedantic(fn, rounds=5, iterations=1, warmup_rounds=1)

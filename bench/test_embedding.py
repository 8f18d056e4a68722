"""pytest-benchmark suite of lossk inside other pipelines (bench/embedding.py): PyTorch autograd,
a PyTorch MLP step, gradient and hessian for boosting, XGBoost boosting rounds; one group each.

    pytest bench/test_embedding.py
    python bench/report.py --cases pipeline       # the same, as a table of ratios
"""
import pytest

import embedding

# labels from the smoke builds (tiny), whatever size the session times
CASES = [(name, label) for name, build in embedding.available().items() for label in build("smoke")]
_built = {}


def callables(name, size):
    if (name, size) not in _built:
        _built.clear()
        _built[(name, size)] = embedding.available()[name](size)
    return _built[(name, size)]


@pytest.mark.parametrize("name, label", CASES, ids=[f"{n}-{label}" for n, label in CASES])
def test_embedding(benchmark, name, label, smoke):
    fn = callables(name, "smoke" if smoke else "full")[label]
    benchmark.group = f"embedding {name}"
    if smoke:
        benchmark.pedantic(fn, rounds=2, iterations=1, warmup_rounds=1)
    else:
        benchmark(fn)

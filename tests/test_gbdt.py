"""lossk.gbdt: gradients and hessians for boosting against float64 NumPy twins, finite differences
and scikit-learn's sklearn._loss; then real XGBoost and LightGBM training with lossk's objectives
giving the models their built-in objectives give."""
import math

import numpy as np
import pytest

import lossk
import lossk.gbdt as G
from helpers import assert_bitwise_equal, assert_close, relayout, unmodified

NAMES = list(G.OBJECTIVES)
PARAMS = {"huber": {"delta": 0.7}, "pseudo_huber": {"delta": 1.3}, "quantile": {"alpha": 0.3},
          "tweedie": {"power": 1.4}}


# --- the float64 twins: (loss, gradient, hessian) per sample ---------------------------------

def _sigmoid(r):
    return np.where(r >= 0, 1 / (1 + np.exp(-np.abs(r))), np.exp(-np.abs(r)) / (1 + np.exp(-np.abs(r))))


def twin(name, r, y, delta=1.0, alpha=0.5, power=1.5):
    z = r - y
    if name == "squared_error":
        return z * z / 2, z, np.ones_like(r)
    if name == "absolute_error":
        return np.abs(z), np.where(r > y, 1.0, -1.0), np.ones_like(r)
    if name == "huber":
        inside = np.abs(z) <= delta
        return (np.where(inside, z * z / 2, delta * (np.abs(z) - delta / 2)),
                np.where(inside, z, delta * np.sign(z)), inside.astype(float))
    if name == "pseudo_huber":
        s = 1 + (z / delta) ** 2
        return delta ** 2 * (np.sqrt(s) - 1), z / np.sqrt(s), s ** -1.5
    if name == "quantile":
        return (np.where(y > r, alpha * (y - r), (1 - alpha) * (r - y)), np.where(y > r, -alpha, 1 - alpha),
                np.ones_like(r))
    if name == "logistic":
        p, e = _sigmoid(r), np.exp(-np.abs(r))
        return np.logaddexp(0, r) - y * r, p - y, e / (1 + e) ** 2     # p (1 - p) without cancellation
    if name == "poisson":
        return np.exp(r) - y * r, np.exp(r) - y, np.exp(r)
    if name == "gamma":
        return r + y * np.exp(-r), 1 - y * np.exp(-r), y * np.exp(-r)
    if name == "tweedie":
        a1, a2 = np.exp((1 - power) * r), np.exp((2 - power) * r)
        loss = (a2 / (2 - power) if power != 2 else r) - (y * a1 / (1 - power) if power != 1 else y * r)
        return loss, a2 - y * a1, (2 - power) * a2 - (1 - power) * y * a1
    raise ValueError(name)


def softmax_twin(r, y):
    m = r.max(axis=1, keepdims=True)
    p = np.exp(r - m) / np.exp(r - m).sum(axis=1, keepdims=True)
    onehot = np.eye(r.shape[1])[y.astype(int)]
    loss = (np.log(np.exp(r - m).sum(axis=1)) + m[:, 0]) - r[np.arange(len(y)), y.astype(int)]
    return loss, p - onehot, p * (1 - p)


def problem(name, rng, n, dtype, k=5):
    """(raw_prediction, y_true) in the objective's domain."""
    if name == "softmax":
        return rng.normal(0, 2, (n, k)).astype(dtype), rng.integers(0, k, n).astype(dtype)
    r = rng.normal(0, 1.5, n).astype(dtype)
    if name == "logistic":
        return r * 3, rng.uniform(0, 1, n).astype(dtype)
    if name in ("poisson", "tweedie"):
        return r, rng.poisson(2.0, n).astype(dtype)
    if name == "gamma":
        return r, rng.gamma(2.0, 1.5, n).astype(dtype)
    return r, (r + rng.normal(0, 2, n)).astype(dtype)


def expected(name, r, y, w, params):
    r64, y64 = r.astype(np.float64), y.astype(np.float64)
    _, g, h = softmax_twin(r64, y64) if name == "softmax" else twin(name, r64, y64, **params)
    if w is not None:
        w64 = w.astype(np.float64)[:, None] if name == "softmax" else w.astype(np.float64)
        g, h = g * w64, h * w64
    return g, h


# --- against the twins, finite differences, scikit-learn ---------------------------------------

@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("name", NAMES)
def test_matches_the_float64_twin(name, weighted, dtype, rng):
    r, y = problem(name, rng, 257, dtype)
    w = rng.uniform(0.25, 2, len(y)).astype(dtype) if weighted else None
    params = PARAMS.get(name, {})
    with unmodified(r, y, w):
        g, h = getattr(G, name + "_grad_hess")(r, y, sample_weight=w, **params)
    assert g.dtype == h.dtype == r.dtype and g.shape == h.shape == r.shape
    eg, eh = expected(name, r, y, w, params)
    scale = np.abs(eg) + 1 if name != "softmax" else 1
    assert_close(g, eg, dtype, scale, f"{name} gradient")
    assert_close(h, eh, dtype, np.abs(eh) + (np.abs(eg) if name in ("tweedie",) else 0) + 1e-300, f"{name} hessian")


@pytest.mark.parametrize("k", [1, 2, 511, 512, 513, 1100])
def test_softmax_rows_longer_than_the_stack_tile(k, dtype, rng):
    r, y = problem("softmax", rng, 40, dtype, k=k)
    w = rng.uniform(0.5, 2, 40).astype(dtype)
    g, h = G.softmax_grad_hess(r, y, sample_weight=w)
    eg, eh = expected("softmax", r, y, w, {})
    assert_close(g, eg, dtype, 1.0, f"softmax k={k} gradient")
    assert_close(h, eh, dtype, 1.0, f"softmax k={k} hessian")


@pytest.mark.parametrize("name", NAMES)
def test_gradient_and_hessian_are_derivatives(name, rng):
    """gradient = d loss / d raw (central differences of the twin's loss); hessian = d gradient /
    d raw (central differences of lossk's own gradient), away from the kinks."""
    r, y = problem(name, rng, 64, np.float64)
    params = PARAMS.get(name, {})
    fn = getattr(G, name + "_grad_hess")
    g, h = fn(r, y, **params)
    eps = 1e-6
    if name == "softmax":
        for j in range(r.shape[1]):
            e = np.zeros_like(r)
            e[:, j] = eps
            fd = (softmax_twin(r + e, y)[0] - softmax_twin(r - e, y)[0]) / (2 * eps)
            np.testing.assert_allclose(g[:, j], fd, rtol=1e-6, atol=1e-7)
            fdh = (fn(r + e, y)[0][:, j] - fn(r - e, y)[0][:, j]) / (2 * eps)
            np.testing.assert_allclose(h[:, j], fdh, rtol=1e-5, atol=1e-7)
        return
    smooth = np.ones(len(r), bool)
    if name in ("absolute_error", "huber", "quantile"):
        kinks = [0.0] + ([params["delta"], -params["delta"]] if name == "huber" else [])
        smooth = np.all([np.abs(r - y - k) > 1e-3 for k in kinks], axis=0)
    fd = (twin(name, r + eps, y, **params)[0] - twin(name, r - eps, y, **params)[0]) / (2 * eps)
    np.testing.assert_allclose(g[smooth], fd[smooth], rtol=1e-6, atol=1e-6)
    if name in ("absolute_error", "quantile"):      # piecewise linear: the hessian is 1 by convention
        np.testing.assert_array_equal(h, 1.0)
        return
    fdh = (fn(r + eps, y, **params)[0] - fn(r - eps, y, **params)[0]) / (2 * eps)
    np.testing.assert_allclose(h[smooth], fdh[smooth], rtol=1e-5, atol=1e-6)


def sklearn_loss(name):
    loss = pytest.importorskip("sklearn._loss.loss")
    return {"squared_error": loss.HalfSquaredError(), "absolute_error": loss.AbsoluteError(),
            "huber": loss.HuberLoss(delta=PARAMS["huber"]["delta"]),
            "quantile": loss.PinballLoss(quantile=PARAMS["quantile"]["alpha"]),
            "logistic": loss.HalfBinomialLoss(), "softmax": loss.HalfMultinomialLoss(n_classes=5),
            "poisson": loss.HalfPoissonLoss(), "gamma": loss.HalfGammaLoss(),
            "tweedie": loss.HalfTweedieLoss(power=PARAMS["tweedie"]["power"])}.get(name)


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("name", NAMES)
def test_matches_sklearn_gradient_hessian(name, weighted, rng):
    sk = sklearn_loss(name)
    if sk is None:
        pytest.skip(f"scikit-learn has no {name} loss")
    r, y = problem(name, rng, 500, np.float64)
    if name == "logistic":
        y = (y > 0.5).astype(np.float64)            # scikit-learn's binomial loss takes 0/1 targets
    w = rng.uniform(0.25, 2, len(y)) if weighted else None
    g, h = getattr(G, name + "_grad_hess")(r, y, sample_weight=w, **PARAMS.get(name, {}))
    sg, sh = sk.gradient_hessian(y_true=y, raw_prediction=r, sample_weight=w)
    np.testing.assert_allclose(g, sg, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(h, sh, rtol=1e-13, atol=1e-15)


def test_property_random_shapes_strides_and_options():
    pytest.importorskip("hypothesis")
    from hypothesis import given, settings
    from hypothesis import strategies as st

    @settings(max_examples=60, deadline=None)
    @given(name=st.sampled_from(NAMES), n=st.integers(0, 300), k=st.integers(1, 12), f32=st.booleans(),
           weighted=st.booleans(), layout=st.sampled_from(["contiguous", "strided"]), seed=st.integers(0, 2 ** 32 - 1))
    def run(name, n, k, f32, weighted, layout, seed):
        rng = np.random.default_rng(seed)
        dtype = np.float32 if f32 else np.float64
        r, y = problem(name, rng, n, dtype, k=k)
        w = rng.uniform(0, 3, n).astype(dtype) if weighted else None
        params = {key: float(v) for key, v in PARAMS.get(name, {}).items()}
        if name == "tweedie":
            params["power"] = float(rng.choice([-1.0, 0.0, 1.0, 1.5, 2.0, 3.0]))
        with unmodified(r, y, w):
            g, h = getattr(G, name + "_grad_hess")(relayout(r, layout), relayout(y, layout), sample_weight=w, **params)
        eg, eh = expected(name, r, y, w, params)
        mag = np.abs(eg) + np.abs(eh) + 1
        assert_close(g, eg, dtype, mag, f"{name} gradient")
        assert_close(h, eh, dtype, mag, f"{name} hessian")

    run()


@pytest.mark.parametrize("name", NAMES)
def test_bit_identical_for_any_thread_count(name, rng):
    r, y = problem(name, rng, 300_000, np.float32, k=10)
    if name == "softmax":
        r, y = r[:30_000], y[:30_000]
    before = lossk.get_num_threads()
    try:
        lossk.set_num_threads(1)
        one = getattr(G, name + "_grad_hess")(r, y)
        lossk.set_num_threads(2)
        two = getattr(G, name + "_grad_hess")(r, y)
    finally:
        lossk.set_num_threads(before)
    for a, b in zip(one, two):
        assert_bitwise_equal(a, b, name)


def test_edge_values(dtype):
    big = np.array([-800.0, -40.0, 0.0, 40.0, 800.0], dtype)
    g, h = G.logistic_grad_hess(big, np.array([1, 0, 1, 1, 0], dtype))
    assert np.all(np.isfinite(g)) and np.all(h >= 0)
    assert g[0] == -1 and g[4] == 1 and h[0] == 0 and h[4] == 0
    assert np.isnan(G.squared_error_grad_hess(np.array([np.nan], dtype), np.zeros(1, dtype))[0][0])
    g, h = G.softmax_grad_hess(np.array([[1000.0, 0.0, -np.inf]], dtype), np.zeros(1, dtype))
    np.testing.assert_array_equal(g, [[0, 0, 0]]) and np.testing.assert_array_equal(h, [[0, 0, 0]])
    for row in ([np.nan, 0.0], [0.0, np.nan], [np.inf, 0.0], [-np.inf, -np.inf]):   # the whole row nan
        g, h = G.softmax_grad_hess(np.array([row], dtype), np.zeros(1, dtype))
        assert np.isnan(g).all() and np.isnan(h).all(), row
    for name in ("squared_error", "absolute_error", "huber", "pseudo_huber", "quantile", "logistic", "poisson",
                 "gamma", "tweedie"):       # a nan prediction or target gives a nan gradient
        for r, y in ((np.nan, 1.0), (1.0, np.nan)):
            g, _ = getattr(G, name + "_grad_hess")(np.array([r], dtype), np.array([y], dtype))
            assert np.isnan(g[0]), (name, r, y)
    g, h = G.poisson_grad_hess(np.array([800.0], dtype), np.zeros(1, dtype))
    assert np.isinf(g[0]) and np.isinf(h[0])
    for name in NAMES:      # empty inputs
        r = np.zeros((0, 3) if name == "softmax" else (0,), dtype)
        g, h = getattr(G, name + "_grad_hess")(r, np.zeros(0, dtype))
        assert g.shape == h.shape == r.shape


def test_any_shape_and_any_label_dtype(rng):
    r = rng.normal(size=(4, 6))
    y = rng.normal(size=(4, 6))
    g, _ = G.squared_error_grad_hess(r.T, y.T)
    np.testing.assert_array_equal(g, r.T - y.T)
    torch = pytest.importorskip("torch")
    g2, _ = G.squared_error_grad_hess(torch.from_numpy(r), torch.from_numpy(y))
    np.testing.assert_array_equal(g2, r - y)
    classes = rng.integers(0, 6, 4)
    for labels in (classes, classes.astype(np.uint8), classes.astype(np.float32), list(classes)):
        np.testing.assert_array_equal(G.softmax_grad_hess(r, labels)[0], G.softmax_grad_hess(r, classes)[0])


BAD = [
    ("raw-int", "squared_error", lambda r, y: (r.astype(int), y, {}), TypeError, "raw_prediction"),
    ("raw-list", "squared_error", lambda r, y: (list(r), y, {}), TypeError, "raw_prediction"),
    ("y-shape", "squared_error", lambda r, y: (r, y[:-1], {}), ValueError, "y_true: expected shape"),
    ("y-str", "logistic", lambda r, y: (r, y.astype(str), {}), TypeError, "y_true"),
    ("y-complex", "gamma", lambda r, y: (r, y.astype(complex), {}), TypeError, "y_true"),
    ("weight-shape", "poisson", lambda r, y: (r, y, {"sample_weight": np.ones(3)}), ValueError, "sample_weight"),
    ("delta-zero", "huber", lambda r, y: (r, y, {"delta": 0.0}), ValueError, "delta"),
    ("delta-nan", "pseudo_huber", lambda r, y: (r, y, {"delta": math.nan}), ValueError, "delta"),
    ("delta-str", "huber", lambda r, y: (r, y, {"delta": "1"}), TypeError, "delta"),
    ("alpha-one", "quantile", lambda r, y: (r, y, {"alpha": 1.0}), ValueError, "alpha"),
    ("power-half", "tweedie", lambda r, y: (r, y, {"power": 0.5}), ValueError, "power"),
    ("unknown-option", "gamma", lambda r, y: (r, y, {"power": 1.5}), TypeError, "power"),
    ("softmax-1d", "softmax", lambda r, y: (r[:, 0], y, {}), ValueError, "raw_prediction: expected shape"),
    ("softmax-no-classes", "softmax", lambda r, y: (r[:, :0], y, {}), ValueError, "raw_prediction"),
    ("softmax-label-high", "softmax", lambda r, y: (r, np.where(np.arange(len(y)) == 3, 5, y), {}), ValueError,
     r"y_true\[3\] is 5"),
    ("softmax-label-negative", "softmax", lambda r, y: (r, -np.ones_like(y), {}), ValueError, r"y_true\[0\] is -1"),
    ("softmax-label-fraction", "softmax", lambda r, y: (r, y + 0.5, {}), ValueError, r"y_true\[0\] is"),
    ("softmax-label-nan", "softmax", lambda r, y: (r, np.full_like(y, np.nan), {}), ValueError, r"y_true\[0\] is nan"),
]


@pytest.mark.parametrize("case", BAD, ids=[c[0] for c in BAD])
def test_bad_arguments(case, rng):
    _, name, make, exc, match = case
    r, y = problem(name, rng, 8, np.float64, k=5)
    r, y, kw = make(r, y)
    with unmodified(*[a for a in (r, y) if isinstance(a, np.ndarray)]), pytest.raises(exc, match=match):
        getattr(G, name + "_grad_hess")(r, y, **kw)


def test_xgboost_adapter_checks_the_columns_and_floors_as_xgboost():
    class Labels:
        def __init__(self, y, w=None):
            self.y, self.w = y, w

        def get_label(self):
            return self.y

        def get_weight(self):
            return np.empty(0) if self.w is None else self.w

    obj = G.xgboost_objective("softmax", num_class=3)
    with pytest.raises(ValueError, match="predt: expected 3 columns"):
        obj(np.zeros((4, 2), np.float32), Labels(np.zeros(4, np.float32)))
    g, h = obj(np.array([[0.0, 1.0, 2.0]], np.float32), Labels(np.array([1.0], np.float32)))
    assert g.dtype == np.float32 and np.isclose(h[0, 0], 2 * np.exp(0) / np.exp([0, 1, 2]).sum() * (1 - np.exp(0) / np.exp([0, 1, 2]).sum()))
    logistic = G.xgboost_objective("logistic")          # XGBoost: max(p (1 - p), 1e-16) * w
    _, h = logistic(np.array([50.0, 50.0]), Labels(np.array([1.0, 1.0]), np.array([0.0, 2.0])))
    np.testing.assert_array_equal(h, [0.0, 2e-16])
    _, h = G.xgboost_objective("softmax", num_class=2)(np.array([[60.0, 0.0]]), Labels(np.array([0.0]),
                                                                                        np.array([0.0])))
    np.testing.assert_array_equal(h, [[1e-16, 1e-16]])  # softmax: max(2 p (1 - p) w, 1e-16)


def test_adapters_reject_bad_names_and_options():
    with pytest.raises(ValueError, match="name: expected one of"):
        G.xgboost_objective("softprob")
    with pytest.raises(ValueError, match="num_class"):
        G.xgboost_objective("softmax")
    with pytest.raises(TypeError, match="unexpected"):
        G.lightgbm_objective("logistic", delta=1.0)
    with pytest.raises(ValueError, match="alpha"):
        G.lightgbm_objective("quantile", alpha=2.0)


# --- real boosting libraries --------------------------------------------------------------------

def datasets():
    sk = pytest.importorskip("sklearn.datasets")
    diabetes = sk.load_diabetes()
    cancer = sk.load_breast_cancer()
    digits = sk.load_digits()
    y = diabetes.target
    return {"regression": (diabetes.data, y), "standardized": (diabetes.data, (y - y.mean()) / y.std()),
            "counts": (diabetes.data, np.round(y / 25)),
            "positive": (diabetes.data, y / 100), "binary": (cancer.data, cancer.target.astype(float)),
            "multiclass": (digits.data, digits.target.astype(float))}


def training_data(data, weighted):
    X, y = datasets()[data]
    return X, y, (np.random.default_rng(5).uniform(0.5, 2, len(y)) if weighted else None)


XGBOOST = [  # (lossk objective, its options, XGBoost's objective and parameters, data)
    ("squared_error", {}, {"objective": "reg:squarederror"}, "regression"),
    ("pseudo_huber", {"huber_slope": 0.8}, {"objective": "reg:pseudohubererror", "huber_slope": 0.8}, "standardized"),
    ("logistic", {}, {"objective": "binary:logistic"}, "binary"),
    ("softmax", {"num_class": 10}, {"objective": "multi:softprob", "num_class": 10}, "multiclass"),
    ("poisson", {}, {"objective": "count:poisson"}, "counts"),
    ("gamma", {}, {"objective": "reg:gamma"}, "positive"),
    ("tweedie", {"tweedie_variance_power": 1.3}, {"objective": "reg:tweedie", "tweedie_variance_power": 1.3}, "counts"),
]


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("name, options, builtin, data", XGBOOST, ids=[c[0] for c in XGBOOST])
def test_xgboost_trains_the_model_of_its_builtin_objective(name, options, builtin, data, weighted):
    xgb = pytest.importorskip("xgboost")
    X, y, w = training_data(data, weighted)
    k = builtin.get("num_class", 1)
    dtrain = xgb.DMatrix(X, label=y, weight=w, base_margin=np.zeros((len(y), k)) if k > 1 else np.zeros(len(y)))
    params = {"tree_method": "hist", "max_depth": 4, "eta": 0.3, "nthread": 1, "seed": 0}
    reference = xgb.train({**params, **builtin}, dtrain, 15)
    custom_params = {**params, **({"num_class": k} if k > 1 else {}), "disable_default_eval_metric": 1}
    if name == "poisson":
        custom_params["max_delta_step"] = 0.7      # count:poisson's default, which also caps each leaf
    model = xgb.train(custom_params, dtrain, 15, obj=G.xgboost_objective(name, **options))
    got, want = model.predict(dtrain, output_margin=True), reference.predict(dtrain, output_margin=True)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())


LIGHTGBM = [
    ("squared_error", {}, {"objective": "regression"}, "regression"),
    ("huber", {"alpha": 0.5}, {"objective": "huber", "alpha": 0.5}, "standardized"),
    ("logistic", {}, {"objective": "binary"}, "binary"),
    ("softmax", {}, {"objective": "multiclass", "num_class": 10}, "multiclass"),
    ("poisson", {}, {"objective": "poisson"}, "counts"),
    ("gamma", {}, {"objective": "gamma"}, "positive"),
    ("tweedie", {"tweedie_variance_power": 1.3}, {"objective": "tweedie", "tweedie_variance_power": 1.3}, "counts"),
]


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("name, options, builtin, data", LIGHTGBM, ids=[c[0] for c in LIGHTGBM])
def test_lightgbm_trains_the_model_of_its_builtin_objective(name, options, builtin, data, weighted):
    lgb = pytest.importorskip("lightgbm")
    X, y, w = training_data(data, weighted)
    params = {"num_leaves": 15, "learning_rate": 0.1, "num_threads": 1, "deterministic": True, "verbose": -1,
              "boost_from_average": False, "seed": 0}
    reference = lgb.train({**params, **builtin}, lgb.Dataset(X, y, weight=w), 15)
    custom = {**params, "objective": G.lightgbm_objective(name, **options)}
    if "num_class" in builtin:
        custom["num_class"] = builtin["num_class"]
    model = lgb.train(custom, lgb.Dataset(X, y, weight=w), 15)
    got, want = model.predict(X, raw_score=True), reference.predict(X, raw_score=True)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * np.abs(want).max())


# --- every instruction-set variant ---------------------------------------------------------------

def isa_workload():
    """{name-dtype: (raw_prediction, y_true, sample_weight, options)}: ragged and parallel sizes."""
    items = {}
    for i, name in enumerate(NAMES):
        for n in (67, 70_001):
            for dtype in (np.float32, np.float64):
                rng = np.random.default_rng(1000 + i)
                r, y = problem(name, rng, n // 10 if name == "softmax" else n, dtype, k=11)
                w = rng.uniform(0.5, 2, len(y)).astype(dtype)
                items[f"{name}-{n}-{np.dtype(dtype).name}"] = (name, r, y, w, PARAMS.get(name, {}))
    return items


def isa_results():
    return {f"{key}/{what}": a for key, (name, r, y, w, params) in isa_workload().items()
            for what, a in zip(("g", "h"), getattr(G, name + "_grad_hess")(r, y, sample_weight=w, **params))}


@pytest.mark.parametrize("isa", ["baseline", "avx2", "avx512", "avx512zen"])
def test_every_isa_variant_matches_the_twin(isa, tmp_path):
    import os
    import subprocess
    import sys

    here = os.path.dirname(os.path.abspath(__file__))
    code = ("import sys; sys.path.insert(0, sys.argv[1])\n"
            "import numpy as np, lossk, test_gbdt as m\n"
            "np.savez(sys.argv[2], isa=np.array(lossk.isa()), **m.isa_results())\n")
    env = dict(os.environ, LOSSK_ISA=isa)
    proc = subprocess.run([sys.executable, "-c", code, here, str(tmp_path / "r.npz")], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with np.load(tmp_path / "r.npz") as data:
        ran = str(data["isa"])
        results = {k: data[k] for k in data.files if k != "isa"}
    if ran != isa:
        pytest.skip(f"this CPU or build has no {isa} variant (ran {ran})")
    for key, (name, r, y, w, params) in isa_workload().items():
        eg, eh = expected(name, r, y, w, params)
        mag = np.abs(eg) + np.abs(eh) + 1
        assert_close(results[f"{key}/g"], eg, r.dtype, mag, f"{isa} {key} gradient")
        assert_close(results[f"{key}/h"], eh, r.dtype, mag, f"{isa} {key} hessian")

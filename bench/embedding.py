"""Benchmarks of lossk embedded in other pipelines, shared by bench/report.py (its "Inside other
pipelines" section) and bench/test_embedding.py:

- ``autograd``: cross-entropy forward + backward inside PyTorch's autograd, ``lossk.torch`` against
  ``torch.nn.functional`` on the same logits;
- ``mlp_step``: one SGD step of a small PyTorch MLP whose only difference is the loss's import;
- ``grad_hess``: the softmax objective's gradient and hessian on (n, 10) for a booster, lossk against
  the usual NumPy custom objective;
- ``boosting_round``: one XGBoost boosting round (10 trees) with its built-in ``multi:softprob``, with
  lossk's objective and with the NumPy one.

Each entry is a dict of callables to time, built for a size ("full" or "smoke").
"""
import numpy as np

import lossk.gbdt

try:
    import torch
    import torch.nn.functional as F

    import lossk.torch as LF
except ImportError:
    torch = None
try:
    import xgboost
except ImportError:
    xgboost = None

SIZES = {"autograd": {"full": (8192, 1000), "smoke": (64, 100)},
         "mlp_step": {"full": (8192, 128, 128, 1000), "smoke": (64, 32, 16, 10)},
         "grad_hess": {"full": (10 ** 6, 10), "smoke": (1000, 10)},
         "boosting_round": {"full": (10 ** 6, 20, 10), "smoke": (2000, 12, 10)}}


def numpy_softmax_objective(predt, labels):
    """The softmax objective as XGBoost's demo writes it in NumPy (float64 temporaries)."""
    p = np.exp(predt - predt.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    grad = p.copy()
    grad[np.arange(len(labels)), labels.astype(np.int64)] -= 1.0
    hess = np.maximum(2.0 * p * (1.0 - p), 1e-16)
    return grad, hess


def autograd(size):
    n, c = SIZES["autograd"][size]
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.normal(0, 2, (n, c)).astype(np.float32)).requires_grad_(True)
    t = torch.from_numpy(rng.integers(0, c, n))

    def step(fn):
        def call():
            x.grad = None
            fn(x, t).backward()
        return call

    return {"lossk.torch.cross_entropy": step(LF.cross_entropy), "torch.nn.functional.cross_entropy": step(F.cross_entropy)}


def mlp_step(size):
    n, d, hidden, classes = SIZES["mlp_step"][size]
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.normal(size=(n, d)).astype(np.float32))
    t = torch.from_numpy(rng.integers(0, classes, n))

    def step(loss_fn):
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(d, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, hidden),
                                    torch.nn.ReLU(), torch.nn.Linear(hidden, classes))
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

        def call():
            opt.zero_grad()
            loss_fn(model(x), t).backward()
            opt.step()
        return call

    return {"lossk.torch.cross_entropy": step(LF.cross_entropy), "torch.nn.functional.cross_entropy": step(F.cross_entropy)}


def grad_hess(size):
    n, k = SIZES["grad_hess"][size]
    rng = np.random.default_rng(0)
    predt = rng.normal(size=(n, k)).astype(np.float32)
    labels = rng.integers(0, k, n).astype(np.float32)
    objective = lossk.gbdt.xgboost_objective("softmax", num_class=k)

    class Labels:       # what an XGBoost objective is handed: a DMatrix's labels and weights
        def get_label(self):
            return labels

        def get_weight(self):
            return np.empty(0, np.float32)

    dtrain = Labels()
    return {"lossk.gbdt (XGBoost adapter)": lambda: objective(predt, dtrain),
            "lossk.gbdt.softmax_grad_hess": lambda: lossk.gbdt.softmax_grad_hess(predt, labels),
            "NumPy objective": lambda: numpy_softmax_objective(predt, labels)}


def boosting_round(size):
    n, features, k = SIZES["boosting_round"][size]
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, features)).astype(np.float32)
    y = (np.argmax(X[:, :k] + rng.normal(0, 1, (n, k)), axis=1)).astype(np.float32)
    dtrain = xgboost.DMatrix(X, label=y, base_margin=np.zeros((n, k), np.float32))
    params = {"tree_method": "hist", "max_depth": 6, "eta": 0.3, "num_class": k, "nthread": lossk.get_num_threads()}

    def rounds(obj, objective):
        booster = xgboost.Booster({**params, "objective": objective, "disable_default_eval_metric": 1}, [dtrain])
        state = {"round": 0}

        def call():
            booster.update(dtrain, state["round"], fobj=obj)
            state["round"] += 1
        return call

    def numpy_obj(predt, d):
        return numpy_softmax_objective(predt, d.get_label())

    return {"XGBoost built-in multi:softprob": rounds(None, "multi:softprob"),
            "lossk.gbdt objective": rounds(lossk.gbdt.xgboost_objective("softmax", num_class=k), "multi:softprob"),
            "NumPy objective": rounds(numpy_obj, "multi:softprob")}


def available():
    """The benchmarks this environment can run: name -> builder."""
    out = {}
    if torch is not None:
        out.update(autograd=autograd, mlp_step=mlp_step)
    out["grad_hess"] = grad_hess
    if xgboost is not None:
        out["boosting_round"] = boosting_round
    return out

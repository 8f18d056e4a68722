"""Gradients and hessians for gradient boosting: custom objectives for XGBoost and LightGBM.

A boosting library fits each tree to the per-sample gradient and hessian of the loss with
respect to the raw prediction (the margin). ``NAME_grad_hess(raw_prediction, y_true, *,
sample_weight=None)`` returns both, ``(gradient, hessian)``, from one fused pass of a C kernel,
shaped and typed like ``raw_prediction`` (float32 or float64; ``y_true`` and ``sample_weight`` of
any real dtype, converted). The losses and links are scikit-learn's (``sklearn._loss``): the
"half" losses whose gradient is exactly ``prediction - y`` for squared error, raw predictions that
are log-means for Poisson, Gamma and Tweedie, logits for the logistic and softmax losses.

Each objective, with r the raw prediction and y the target (gradient; hessian):

- ``squared_error``: loss (r - y)^2 / 2; r - y; 1
- ``absolute_error``: ``|r - y|``; 1 if r > y else -1; 1
- ``huber`` (``delta``): the Huber loss; r - y clipped to [-delta, delta]; 1 where ``|r - y| <= delta``, else 0
- ``pseudo_huber`` (``delta``): delta^2 (sqrt(1 + ((r - y)/delta)^2) - 1); (r - y) / sqrt(1 + ...);
  (1 + ...)^(-3/2)
- ``quantile`` (``alpha``): the pinball loss; -alpha if y > r else 1 - alpha; 1
- ``logistic``: log(1 + e^r) - y r; sigmoid(r) - y; p (1 - p)
- ``softmax``: log sum_j e^(r_j) - r_y; p_j - [y = j]; p_j (1 - p_j)
- ``poisson``: e^r - y r; e^r - y; e^r
- ``gamma``: r + y e^(-r); 1 - y e^(-r); y e^(-r)
- ``tweedie`` (``power`` p): e^((2-p) r)/(2-p) - y e^((1-p) r)/(1-p); e^((2-p) r) - y e^((1-p) r);
  (2-p) e^((2-p) r) - (1-p) y e^((1-p) r)

softmax takes ``raw_prediction`` of shape (n_samples, n_classes) and ``y_true`` a class index per
sample (integers, or floats holding integers, as boosting libraries store labels); its hessian
is the diagonal one, as XGBoost and LightGBM use. The other objectives take ``raw_prediction``
of any shape with ``y_true`` (and ``sample_weight``) of the same shape. Both outputs are
multiplied by ``sample_weight``. The hessian 1 of absolute_error and quantile (whose second
derivative is 0 wherever it exists) is the usual convention, scikit-learn's. A nan prediction or
target gives a nan gradient (scikit-learn's absolute and pinball losses give -1 or 1 - alpha); in
softmax, a row holding nan or +inf, or only -inf, comes out all nan. Inputs are not checked against a loss's domain (a negative Poisson
count gives its formula's value), as ``sklearn._loss``'s ``gradient_hessian``.

:func:`xgboost_objective` and :func:`lightgbm_objective` wrap an objective as the callable each
library takes (``xgboost.train(params, dtrain, obj=...)``, LightGBM's ``params["objective"]``),
with that library's array layouts and the conventions of its own built-in objective, so that a
model trained with it matches one trained with the built-in: see their docstrings.
"""
import math
import numbers
from dataclasses import dataclass
from typing import Callable

import numpy as np

from . import _core
from ._losses import define

__all__ = []


@dataclass(frozen=True)
class Objective:
    name: str
    parameter: str = ""                         # its one parameter, passed to the kernel as param
    default: float = 0.0
    check: Callable = None                      # value -> error text, "" when valid
    classes: bool = False                       # raw_prediction (n_samples, n_classes)
    doc: str = ""


def _positive(value):
    return "" if value > 0 else "expected a number > 0"


def _unit_open(value):
    return "" if 0 < value < 1 else "expected a number in (0, 1)"


def _tweedie_power(value):
    return "" if value <= 0 or value >= 1 else "expected a power <= 0 or >= 1 (Tweedie has none in (0, 1))"


OBJECTIVES = {o.name: o for o in [
    Objective("squared_error", doc="Half squared error ``(r - y)**2 / 2``: gradient ``r - y``, hessian 1."),
    Objective("absolute_error", doc="Absolute error ``|r - y|``: gradient ``1 if r > y else -1`` (-1 at r == y, as "
                                    "scikit-learn), hessian 1."),
    Objective("huber", "delta", 1.0, _positive,
              doc="Huber loss of ``r - y`` with threshold ``delta`` (> 0): gradient ``r - y`` clipped to "
                  "``[-delta, delta]``, hessian 1 where ``|r - y| <= delta``, else 0."),
    Objective("pseudo_huber", "delta", 1.0, _positive,
              doc="Pseudo-Huber loss ``delta**2 (sqrt(1 + ((r - y) / delta)**2) - 1)`` (XGBoost's "
                  "``reg:pseudohubererror``, ``huber_slope`` = ``delta``): gradient ``(r - y) / sqrt(1 + ...)``, "
                  "hessian ``(1 + ...)**(-3/2)``."),
    Objective("quantile", "alpha", 0.5, _unit_open,
              doc="Pinball loss of level ``alpha`` in (0, 1): gradient ``-alpha`` where ``y > r``, else "
                  "``1 - alpha``; hessian 1."),
    Objective("logistic", doc="Binary log loss of the logit ``r`` against ``y`` in [0, 1]: gradient "
                              "``sigmoid(r) - y``, hessian ``p (1 - p)``; exact for logits of any size."),
    Objective("softmax", classes=True,
              doc="Multinomial log loss of the logits ``r`` (n_samples, n_classes) against class indices "
                  "``y``: gradient ``softmax(r) - onehot(y)``, diagonal hessian ``p (1 - p)``. A ``y`` that "
                  "is not an integer in [0, n_classes) raises ValueError naming it, before anything is written."),
    Objective("poisson", doc="Half Poisson deviance with log link (``r`` = log of the mean): gradient "
                             "``exp(r) - y``, hessian ``exp(r)``."),
    Objective("gamma", doc="Half Gamma deviance with log link: gradient ``1 - y exp(-r)``, hessian ``y exp(-r)``."),
    Objective("tweedie", "power", 1.5, _tweedie_power,
              doc="Half Tweedie deviance of power ``power`` (<= 0 or >= 1; 1 is Poisson, 2 Gamma) with log "
                  "link: gradient ``exp((2-p) r) - y exp((1-p) r)``, hessian "
                  "``(2-p) exp((2-p) r) - (1-p) y exp((1-p) r)``."),
]}


def _number(name, value, check):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected a number, got {type(value).__name__}")
    value = float(value)
    problem = "expected a number, got nan" if math.isnan(value) else check(value)
    if problem:
        raise ValueError(f"{name}: {problem}, got {value}")
    return value


def _grad_hess(objective, raw_prediction, y_true, sample_weight, param=0.0, param2=0.0, hess_scale=1.0,
               hess_floor=-math.inf, floor_weighted=True):
    return _core.gbdt(raw_prediction, y_true, kernel=_core.kernel_id("gbdt_" + objective.name, "gbdt"),
                      sample_weight=sample_weight, param=param, param2=param2, hess_scale=hess_scale,
                      hess_floor=hess_floor, floor_weighted=floor_weighted, classes=objective.classes)


def _define(objective):
    name = objective.name + "_grad_hess"
    parameter = f"{objective.parameter}={objective.default!r}, " if objective.parameter else ""
    param = (f", param=_number({objective.parameter!r}, {objective.parameter}, _objective.check)"
             if objective.parameter else "")
    fn = define(name, f"raw_prediction, y_true, *, {parameter}sample_weight=None",
                f"_grad_hess(_objective, raw_prediction, y_true, sample_weight{param})",
                {"_grad_hess": _grad_hess, "_number": _number, "_objective": objective}, __name__)
    fn.__doc__ = (f"{objective.doc}\n\n``(gradient, hessian)`` with respect to ``raw_prediction``, shaped and "
                  "typed like it, each multiplied by ``sample_weight`` when given (see :mod:`lossk.gbdt`).")
    globals()[name] = fn
    __all__.append(name)


for _objective in OBJECTIVES.values():
    _define(_objective)
del _objective


def _objective_and_param(name, params, parameter_alias=None, default=None):
    """The objective `name` and its parameter's value from `params` (by its name, or the library's
    alias; else `default`, else the objective's)."""
    try:
        objective = OBJECTIVES[name]
    except (KeyError, TypeError):
        raise ValueError(f"name: expected one of {', '.join(OBJECTIVES)}, got {name!r}") from None
    value = objective.default if default is None else default
    if objective.parameter:
        for key in (objective.parameter, parameter_alias):
            if key and key in params:
                value = params.pop(key)
        value = _number(objective.parameter, value, objective.check)
    return objective, value


def _no_other(params, allowed):
    extra = set(params) - set(allowed)
    if extra:
        raise TypeError(f"unexpected keyword argument(s): {', '.join(sorted(extra))}")


def xgboost_objective(name, *, num_class=None, max_delta_step=0.7, **params):
    """The objective `name` as XGBoost's custom objective: ``xgboost.train(params, dtrain, obj=...)``.

    The callable takes ``(predt, dtrain)`` (``predt`` of shape (n,) or, with ``num_class`` set in
    XGBoost's params, (n, num_class)) and returns ``(grad, hess)`` of ``predt``'s shape and dtype,
    weighted by ``dtrain.get_weight()``. It follows XGBoost's built-in objectives where they differ
    from :mod:`lossk.gbdt`'s: "softmax" (``multi:softprob``) doubles the hessian, ``2 p (1 - p)``,
    and floors it at 1e-16 after weighting, "logistic" floors it at 1e-16 before weighting, "poisson"
    (``count:poisson``) takes the hessian ``exp(r + max_delta_step)`` (XGBoost's default 0.7;
    count:poisson also caps each leaf's step by it: put ``max_delta_step=0.7`` in XGBoost's params too),
    "pseudo_huber" takes ``delta`` or XGBoost's name ``huber_slope``, "tweedie" ``power`` or
    ``tweedie_variance_power``, "quantile" ``alpha`` or ``quantile_alpha``. A custom objective
    starts from ``base_score`` taken as a margin (XGBoost estimates a better one for its built-in
    objectives): set ``base_score`` or the DMatrix's ``base_margin`` the same way to compare.
    XGBoost's ``reg:absoluteerror`` and ``reg:quantileerror`` also re-fit each leaf to a quantile
    of its residuals, which no gradient and hessian express.
    """
    aliases = {"pseudo_huber": "huber_slope", "tweedie": "tweedie_variance_power", "quantile": "quantile_alpha"}
    objective, value = _objective_and_param(name, params, aliases.get(name))
    _no_other(params, ())
    hess_scale = 2.0 if objective.name == "softmax" else 1.0
    hess_floor = 1e-16 if objective.name in ("softmax", "logistic") else -math.inf
    log_offset = _number("max_delta_step", max_delta_step, lambda v: "") if objective.name == "poisson" else 0.0
    if objective.classes and (isinstance(num_class, bool) or not isinstance(num_class, numbers.Integral)
                              or num_class < 1):
        raise ValueError(f"num_class: expected the number of classes (an int >= 1) for {name}, got {num_class!r}")

    def objective_fn(predt, dtrain):
        w = dtrain.get_weight()
        w = w if w is not None and np.size(w) else None
        if objective.classes and np.ndim(predt) == 1:     # older XGBoost: a flat array, row-major
            predt = np.reshape(predt, (-1, num_class))
        if objective.classes and np.shape(predt)[1] != num_class:
            raise ValueError(f"predt: expected {num_class} columns (num_class), got shape {np.shape(predt)}")
        return _grad_hess(objective, predt, dtrain.get_label(), w, value, log_offset, hess_scale, hess_floor,
                          floor_weighted=objective.name != "logistic")

    objective_fn.__name__ = objective_fn.__qualname__ = f"lossk_{objective.name}"
    return objective_fn


def lightgbm_objective(name, *, max_delta_step=0.7, **params):
    """The objective `name` as LightGBM's callable objective: ``params["objective"] = ...``.

    The callable takes ``(preds, train_data)`` (``preds`` of shape (n,), or (n, num_class) for
    "softmax" in LightGBM 4; the class-major flat array of older versions is read as such) and
    returns ``(grad, hess)`` in the same layout, weighted by ``train_data.get_weight()``. It follows
    LightGBM's built-in objectives: "softmax" (``multiclass``) scales the hessian by
    ``num_class / (num_class - 1)``, "poisson" takes the hessian ``exp(r + max_delta_step)``
    (LightGBM's ``poisson_max_delta_step``, default 0.7), "tweedie" takes ``power`` or
    ``tweedie_variance_power``, "huber" ``delta`` or LightGBM's ``alpha`` (default 0.9, LightGBM's)
    and has hessian 1 everywhere, as LightGBM's, "quantile" ``alpha`` (default 0.9, LightGBM's). A
    custom objective starts from 0 (set ``boost_from_average=False`` on a built-in one to compare,
    or an ``init_score``). LightGBM's ``regression_l1`` and ``quantile`` also re-fit each leaf, so
    those two differ from their built-ins.
    """
    aliases = {"tweedie": "tweedie_variance_power", "huber": "alpha"}
    defaults = {"huber": 0.9, "quantile": 0.9}
    objective, value = _objective_and_param(name, params, aliases.get(name), defaults.get(name))
    _no_other(params, ())
    # poisson: the hessian's log offset; huber: a hessian of 1 everywhere
    second = {"poisson": _number("max_delta_step", max_delta_step, lambda v: ""), "huber": 1.0}.get(objective.name, 0.0)

    def objective_fn(preds, train_data):
        w = train_data.get_weight()
        y = train_data.get_label()
        if not objective.classes:
            return _grad_hess(objective, preds, y, w, value, second)
        flat = np.ndim(preds) == 1
        raw = np.reshape(preds, (-1, np.size(y))).T if flat else preds     # class-major (k, n) seen as (n, k)
        k = raw.shape[1]
        g, h = _grad_hess(objective, raw, y, w, value, 0.0, k / (k - 1) if k > 1 else 1.0)
        return (g.T.ravel(), h.T.ravel()) if flat else (g, h)

    objective_fn.__name__ = objective_fn.__qualname__ = f"lossk_{objective.name}"
    return objective_fn


__all__ += ["OBJECTIVES", "xgboost_objective", "lightgbm_objective"]

"""Tables of loss cases shared by the test modules: each case names a lossk loss, fixed options
and how to make inputs, targets and array options (weights) of a given shape and dtype."""
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

import lossk
from lossk._losses import BY_NAME, CLASSIFICATION, ELEMENTWISE, LOSSES, MARGIN, MULTI_INPUT

ELEMENTWISE_LOSSES = [loss.name for loss in LOSSES if loss.family == ELEMENTWISE]
CLASSIFICATION_LOSSES = [loss.name for loss in LOSSES if loss.family == CLASSIFICATION]
MARGIN_LOSSES = [loss.name for loss in LOSSES if loss.family == MARGIN]
MULTI_INPUT_LOSSES = [loss.name for loss in LOSSES if loss.family == MULTI_INPUT]


def functions(name):
    """(NAME, NAME_grad, NAME_with_grad) of lossk."""
    return getattr(lossk, name), getattr(lossk, name + "_grad"), getattr(lossk, name + "_with_grad")


@dataclass(frozen=True)
class Case:
    id: str
    name: str                                   # the lossk (and torch.nn.functional) function name
    make: Callable                              # (rng, shape, dtype) -> (input, target)
    options: dict = field(default_factory=dict)     # fixed keyword options
    arrays: dict = field(default_factory=dict)      # option name -> (rng, shape, dtype) -> array
    kinks: tuple = ()                           # |input - target| where the loss is not smooth
    input_kinks: tuple = ()                     # inputs where the loss is not smooth

    def __repr__(self):
        return self.id

    def reductions(self):
        return list(BY_NAME[self.name].reductions)

    def build(self, rng, shape, dtype):
        """(input, target, options) with the array options made for `shape`."""
        x, t = self.make(rng, shape, dtype)
        opts = dict(self.options)
        for key, make in self.arrays.items():
            opts[key] = np.asarray(make(rng, shape, dtype))
        return np.asarray(x), np.asarray(t), opts


def with_reductions(cases):
    """pytest params (case, reduction) for every reduction each case has."""
    import pytest

    return [pytest.param(c, r, id=f"{c.id}-{r}") for c in cases for r in c.reductions()]


# --- elementwise --------------------------------------------------------------------------------

def regression(rng, shape, dtype):
    return (rng.normal(0, 1.5, shape).astype(dtype), rng.normal(0, 1.5, shape).astype(dtype))


def probabilities(rng, shape, dtype):
    """BCE: inputs strictly inside (0, 1), soft targets in [0, 1] with some exact 0s and 1s."""
    x = rng.uniform(0.02, 0.98, shape)
    t = rng.uniform(0, 1, shape)
    t = np.where(rng.random(shape) < 0.2, np.round(t), t)
    return x.astype(dtype), t.astype(dtype)


def logits(rng, shape, dtype):
    return rng.normal(0, 3, shape).astype(dtype), rng.uniform(0, 1, shape).astype(dtype)


def log_probs_and_probs(rng, shape, dtype):
    """kl_div: input log-probabilities (negative), target probabilities with some exact zeros."""
    x = np.log(rng.uniform(0.01, 1, shape))
    t = rng.uniform(0, 1, shape)
    t = np.where(rng.random(shape) < 0.25, 0.0, t)
    return x.astype(dtype), t.astype(dtype)


def log_probs_twice(rng, shape, dtype):
    return np.log(rng.uniform(0.01, 1, shape)).astype(dtype), np.log(rng.uniform(0.01, 1, shape)).astype(dtype)


def signs(rng, shape, dtype):
    """Margin losses: scores and targets of 1 or -1."""
    return rng.normal(0, 1.5, shape).astype(dtype), rng.choice([-1.0, 1.0], shape).astype(dtype)


def signs_and_zeros(rng, shape, dtype):
    """hinge_embedding_loss: targets 1, -1 and 0 (which takes both of PyTorch's terms)."""
    return rng.normal(0, 1.5, shape).astype(dtype), rng.choice([-1.0, 0.0, 1.0], shape).astype(dtype)


def counts(rng, shape):
    """Poisson counts from 0 to about 20: zeros, ones and counts > 1 (full's Stirling term)."""
    return rng.poisson(np.exp(rng.normal(0.5, 1.0, shape))).astype(np.float64)


def log_rates_and_counts(rng, shape, dtype):
    return rng.normal(0.5, 1.0, shape).astype(dtype), counts(rng, shape).astype(dtype)


def rates_and_counts(rng, shape, dtype):
    return rng.uniform(0.05, 5.0, shape).astype(dtype), counts(rng, shape).astype(dtype)


def logits_and_labels(rng, shape, dtype):
    """Detection scores: logits and 0/1 labels."""
    return rng.normal(0, 3, shape).astype(dtype), (rng.random(shape) < 0.3).astype(dtype)


def _weight(kind):
    """A weight of a shape that broadcasts to the input in one of several ways."""
    def make(rng, shape, dtype):
        if kind == "full":
            wshape = shape
        elif kind == "last":                       # one per "class": the last axis
            wshape = shape[-1:]
        elif kind == "lead":                       # (d0, 1, ..., 1): does not repeat periodically
            wshape = shape[:1] + (1,) * (len(shape) - 1)
        elif kind == "scalar":
            wshape = ()
        else:
            raise ValueError(kind)
        return rng.uniform(0.25, 2.0, wshape).astype(dtype)
    make.kind = kind
    return make


ELEMENTWISE_CASES = [
    Case("l1", "l1_loss", regression, kinks=(0.0,)),
    Case("l1-w_full", "l1_loss", regression, arrays={"weight": _weight("full")}, kinks=(0.0,)),
    Case("mse", "mse_loss", regression),
    Case("mse-w_full", "mse_loss", regression, arrays={"weight": _weight("full")}),
    Case("smooth_l1", "smooth_l1_loss", regression, kinks=(0.0, 1.0)),
    Case("smooth_l1-beta0.5", "smooth_l1_loss", regression, {"beta": 0.5}, kinks=(0.0, 0.5)),
    Case("smooth_l1-beta2.5", "smooth_l1_loss", regression, {"beta": 2.5}, kinks=(0.0, 2.5)),
    Case("smooth_l1-beta0", "smooth_l1_loss", regression, {"beta": 0.0}, kinks=(0.0,)),
    Case("huber", "huber_loss", regression, kinks=(0.0, 1.0)),
    Case("huber-delta0.3", "huber_loss", regression, {"delta": 0.3}, kinks=(0.0, 0.3)),
    Case("huber-delta2", "huber_loss", regression, {"delta": 2.0}, kinks=(0.0, 2.0)),
    Case("huber-delta0.5-w_full", "huber_loss", regression, {"delta": 0.5}, arrays={"weight": _weight("full")},
         kinks=(0.0, 0.5)),
    Case("bce", "binary_cross_entropy", probabilities),
    Case("bce-w_full", "binary_cross_entropy", probabilities, arrays={"weight": _weight("full")}),
    Case("bce-w_last", "binary_cross_entropy", probabilities, arrays={"weight": _weight("last")}),
    Case("bce-w_lead", "binary_cross_entropy", probabilities, arrays={"weight": _weight("lead")}),
    Case("bce-w_scalar", "binary_cross_entropy", probabilities, arrays={"weight": _weight("scalar")}),
    Case("bce_logits", "binary_cross_entropy_with_logits", logits),
    Case("bce_logits-w_last", "binary_cross_entropy_with_logits", logits, arrays={"weight": _weight("last")}),
    Case("bce_logits-pw_last", "binary_cross_entropy_with_logits", logits,
         arrays={"pos_weight": _weight("last")}),
    Case("bce_logits-w_full-pw_last", "binary_cross_entropy_with_logits", logits,
         arrays={"weight": _weight("full"), "pos_weight": _weight("last")}),
    Case("bce_logits-w_lead-pw_full", "binary_cross_entropy_with_logits", logits,
         arrays={"weight": _weight("lead"), "pos_weight": _weight("full")}),
    Case("bce_logits-w_scalar-pw_lead", "binary_cross_entropy_with_logits", logits,
         arrays={"weight": _weight("scalar"), "pos_weight": _weight("lead")}),
    Case("kl_div", "kl_div", log_probs_and_probs),
    Case("kl_div-log_target", "kl_div", log_probs_twice, {"log_target": True}),
    Case("soft_margin", "soft_margin_loss", signs),
    Case("soft_margin-real_targets", "soft_margin_loss", regression),
    Case("hinge_embedding", "hinge_embedding_loss", signs, input_kinks=(1.0,)),
    Case("hinge_embedding-margin0.5-zero_targets", "hinge_embedding_loss", signs_and_zeros, {"margin": 0.5},
         input_kinks=(0.5,)),
    Case("hinge_embedding-margin-2", "hinge_embedding_loss", signs, {"margin": -2.0}, input_kinks=(-2.0,)),
    Case("poisson_nll", "poisson_nll_loss", log_rates_and_counts),
    Case("poisson_nll-full", "poisson_nll_loss", log_rates_and_counts, {"full": True}),
    Case("poisson_nll-rate", "poisson_nll_loss", rates_and_counts, {"log_input": False}),
    Case("poisson_nll-rate-full-eps0.1", "poisson_nll_loss", rates_and_counts,
         {"log_input": False, "full": True, "eps": 0.1}),
    Case("sigmoid_focal", "sigmoid_focal_loss", logits_and_labels),
    Case("sigmoid_focal-soft_targets", "sigmoid_focal_loss", logits),
    Case("sigmoid_focal-gamma0.5-alpha0.75", "sigmoid_focal_loss", logits_and_labels, {"gamma": 0.5, "alpha": 0.75}),
    Case("sigmoid_focal-gamma0-no_alpha", "sigmoid_focal_loss", logits, {"gamma": 0.0, "alpha": -1.0}),
    Case("sigmoid_focal-gamma1", "sigmoid_focal_loss", logits_and_labels, {"gamma": 1.0}),
    Case("sigmoid_focal-gamma3.5-alpha0", "sigmoid_focal_loss", logits, {"gamma": 3.5, "alpha": 0.0}),
]

def shapes_and_layouts(pairs):
    """pytest params (shape, layout): each shape in one or two memory layouts (every layout is
    seen with every rank across the list, without the cost of the full product)."""
    import pytest

    return [pytest.param(shape, layout, id=f"{shape_id(shape)}-{layout}") for shape, layout in pairs]


# 1-d, broadcast-friendly, and sizes with SIMD tails (0-d inputs have tests of their own)
ELEMENTWISE_SHAPES = [((7,), "strided"), ((7,), "contiguous"), ((3, 5), "transposed"), ((2, 1, 5), "strided"),
                      ((2, 3, 4), "contiguous"), ((2, 3, 4), "transposed"), ((19, 35), "strided"),
                      ((19, 35), "contiguous")]


# --- classification ----------------------------------------------------------------------------

def class_weight(rng, shape, dtype):
    C = shape[0] if len(shape) == 1 else shape[1]
    return rng.uniform(0.2, 2.0, C).astype(dtype)


def index_targets(ignore):
    """Class-index targets (int64) for input `shape`; `ignore`: None (no ignored position),
    "neg" (ignore_index -1, ~30% of the targets) or "class" (ignore_index 1, a valid class,
    ~30% of the targets)."""
    def make(rng, shape, dtype):
        C = shape[0] if len(shape) == 1 else shape[1]
        tshape = () if len(shape) == 1 else shape[:1] + shape[2:]
        x = rng.normal(0, 2, shape).astype(dtype)
        t = rng.integers(0, C, tshape)
        if ignore is not None:
            t = np.where(rng.random(tshape) < 0.3, -1 if ignore == "neg" else 1, t)
        return x, np.asarray(t, dtype=np.int64)
    return make


def log_prob_scores(rng, shape, dtype):
    """nll_loss: log-probabilities over the class axis."""
    axis = 0 if len(shape) == 1 else 1
    z = rng.normal(0, 2, shape)
    z = z - np.log(np.sum(np.exp(z), axis=axis, keepdims=True))
    return z.astype(dtype)


def prob_targets(rng, shape, dtype):
    """Probability targets shaped like the input (softmax of random scores; ~20% exact zeros)."""
    axis = 0 if len(shape) == 1 else 1
    x = rng.normal(0, 2, shape).astype(dtype)
    p = np.exp(rng.normal(0, 1, shape)) * (rng.random(shape) > 0.2)
    p = p / np.maximum(np.sum(p, axis=axis, keepdims=True), 1e-300)
    return x, p.astype(dtype)


IGNORE_INDEX = {None: -100, "neg": -1, "class": 1}


def _classification_cases():
    cases = []
    for weighted in (False, True):
        arrays = {"weight": class_weight} if weighted else {}
        wid = "-w" if weighted else ""
        for ignore in (None, "neg", "class"):
            iid = "" if ignore is None else f"-ign_{ignore}"
            opts = {} if ignore is None else {"ignore_index": IGNORE_INDEX[ignore]}
            for eps in (0.0, 0.1, 1.0):
                sid = "" if eps == 0 else f"-ls{eps}"
                cases.append(Case(f"ce{wid}{iid}{sid}", "cross_entropy", index_targets(ignore),
                                  {**opts, **({"label_smoothing": eps} if eps else {})}, arrays))
            make = index_targets(ignore)
            cases.append(Case(f"nll{wid}{iid}", "nll_loss",
                              lambda rng, shape, dtype, make=make: (log_prob_scores(rng, shape, dtype),
                                                                     make(rng, shape, dtype)[1]),
                              opts, arrays))
        for eps in (0.0, 0.25, 1.0):
            sid = "" if eps == 0 else f"-ls{eps}"
            cases.append(Case(f"ce_prob{wid}{sid}", "cross_entropy", prob_targets,
                              {"label_smoothing": eps} if eps else {}, arrays))
    return cases


CLASSIFICATION_CASES = _classification_cases()

# unbatched (C,), (N, C) and K = 1, 2, 3 spatial dimensions
CLASSIFICATION_SHAPES = [((5,), "strided"), ((6, 4), "transposed"), ((6, 4), "contiguous"), ((3, 4, 5), "strided"),
                         ((2, 3, 4, 3), "transposed"), ((2, 3, 2, 3, 2), "strided"),
                         ((2, 3, 2, 3, 2), "contiguous")]


# --- margin losses: one loss per row of the last axis ------------------------------------------

def scores_and_classes(rng, shape, dtype):
    """multi_margin_loss: scores (about half the margins active) and a class index per row."""
    return rng.normal(0, 1, shape).astype(dtype), rng.integers(0, shape[-1], shape[:-1])


def scores_and_class_lists(rng, shape, dtype):
    """multilabel_margin_loss: per row a list of 0 to min(C, 12) distinct classes (a repeat now and
    then; all C of them for C <= 12), ended by -1 when shorter than C, followed by arbitrary indices
    in [-1, C). (The loss costs a pass over the row per listed class.)"""
    C = shape[-1]
    rows = int(np.prod(shape[:-1], dtype=np.int64))
    t = rng.integers(-1, C, (rows, C))
    for row in t:
        k = int(rng.integers(0, min(C, 12) + 1))
        row[:k] = rng.permutation(C)[:k]
        if 1 < k and rng.random() < 0.3:
            row[k - 1] = row[0]
        if k < C:
            row[k] = -1
    return rng.normal(0, 1, shape).astype(dtype), t.reshape(shape)


def logits_and_label_sets(rng, shape, dtype):
    """multilabel_soft_margin_loss: logits and targets in [0, 1], most of them exactly 0 or 1."""
    t = rng.uniform(0, 1, shape)
    t = np.where(rng.random(shape) < 0.7, np.round(t), t)
    return rng.normal(0, 3, shape).astype(dtype), t.astype(dtype)


def row_class_weight(rng, shape, dtype):
    return rng.uniform(0.2, 2.0, shape[-1]).astype(dtype)


MARGIN_CASES = [
    Case("multi_margin", "multi_margin_loss", scores_and_classes),
    Case("multi_margin-p2", "multi_margin_loss", scores_and_classes, {"p": 2}),
    Case("multi_margin-margin0.3-w", "multi_margin_loss", scores_and_classes, {"margin": 0.3},
         {"weight": row_class_weight}),
    Case("multi_margin-p2-margin-0.5-w", "multi_margin_loss", scores_and_classes, {"p": 2, "margin": -0.5},
         {"weight": row_class_weight}),
    Case("multilabel_margin", "multilabel_margin_loss", scores_and_class_lists),
    Case("multilabel_soft_margin", "multilabel_soft_margin_loss", logits_and_label_sets),
    Case("multilabel_soft_margin-w_last", "multilabel_soft_margin_loss", logits_and_label_sets,
         arrays={"weight": _weight("last")}),
    Case("multilabel_soft_margin-w_full", "multilabel_soft_margin_loss", logits_and_label_sets,
         arrays={"weight": _weight("full")}),
    Case("multilabel_soft_margin-w_lead", "multilabel_soft_margin_loss", logits_and_label_sets,
         arrays={"weight": _weight("lead")}),
    Case("multilabel_soft_margin-w_scalar", "multilabel_soft_margin_loss", logits_and_label_sets,
         arrays={"weight": _weight("scalar")}),
]


def takes_rank(case, ndim):
    """multi_margin_loss and multilabel_margin_loss take (C,) and (N, C) input only."""
    return ndim >= 1 and (ndim <= 2 or BY_NAME[case.name].targets == "values")


# unbatched, rows (one class; SIMD tails; more classes than a chunk of the kernel) and, for
# multilabel_soft_margin_loss, leading axes
MARGIN_SHAPES = [((5,), "strided"), ((6, 4), "transposed"), ((6, 4), "contiguous"), ((3, 1), "strided"),
                 ((9, 33), "strided"), ((2, 1100), "contiguous"), ((2, 3, 5), "transposed"),
                 ((2, 3, 2, 5), "strided")]


def margin_params(cases, shapes):
    """pytest params (case, reduction, shape, layout) for the shapes each case takes."""
    import pytest

    return [pytest.param(c, r, shape, layout, id=f"{c.id}-{r}-{shape_id(shape)}-{layout}")
            for c in cases for r in c.reductions() for shape, layout in shapes if takes_rank(c, len(shape))]


# --- losses of several differentiable arrays ------------------------------------------------------

@dataclass(frozen=True)
class MultiCase:
    id: str
    name: str
    make: Callable                  # (rng, shape, dtype) -> the loss's arrays, in its argument order
    options: dict = field(default_factory=dict)

    def __repr__(self):
        return self.id

    def reductions(self):
        return list(BY_NAME[self.name].reductions)

    @property
    def layout(self):
        return BY_NAME[self.name].layout

    def build(self, rng, shape, dtype):
        return tuple(np.asarray(a) if not isinstance(a, float) else a for a in self.make(rng, shape, dtype)), \
            dict(self.options)


def ranked_pairs(rng, shape, dtype):
    return (rng.normal(0, 1, shape).astype(dtype), rng.normal(0, 1, shape).astype(dtype),
            rng.choice([-1.0, 1.0], shape).astype(dtype))


def ranked_pairs_any_target(rng, shape, dtype):
    """Targets that are not only +-1 (the loss is defined for any real target)."""
    return (rng.normal(0, 1, shape).astype(dtype), rng.normal(0, 1, shape).astype(dtype),
            rng.normal(0, 1, shape).astype(dtype))


def gaussian(var_kind):
    """Means, samples and variances in [0.05, 3) (a few below eps = 1e-6, at the clamp) of the kind:
    "full" (per element), "row" (shape[:-1]), "last1" (the last axis 1), "first1" (the first axis 1)
    or "float" (a Python float)."""
    def make(rng, shape, dtype):
        x, t = rng.normal(0, 1, shape).astype(dtype), rng.normal(0, 1.5, shape).astype(dtype)
        vshape = {"full": shape, "row": shape[:-1], "last1": shape[:-1] + (1,),
                  "first1": (1,) + shape[1:]}.get(var_kind)
        if var_kind == "float":
            return x, t, 0.7
        var = rng.uniform(0.05, 3.0, vshape)
        var = np.where(rng.random(vshape) < 0.1, rng.choice([0.0, 1e-9, 1e-6], vshape), var)
        return x, t, np.asarray(var, dtype=dtype)
    make.var_kind = var_kind
    return make


def embedding_pairs(rng, shape, dtype):
    """cosine_embedding_loss: two embeddings, targets 1 and -1 per row (now and then 0: no loss)."""
    rows = shape[:-1]
    return (rng.normal(0, 1, shape).astype(dtype), rng.normal(0, 1, shape).astype(dtype),
            rng.choice([-1, 1, 1, -1, 0], rows).astype(np.int64))


def triplets(rng, shape, dtype):
    """Anchors, positives near them and negatives: about half the margins active."""
    a = rng.normal(0, 1, shape)
    return a.astype(dtype), (a + 0.6 * rng.normal(0, 1, shape)).astype(dtype), rng.normal(0, 1, shape).astype(dtype)


MULTI_INPUT_CASES = [
    MultiCase("margin_ranking", "margin_ranking_loss", ranked_pairs),
    MultiCase("margin_ranking-margin0.5", "margin_ranking_loss", ranked_pairs, {"margin": 0.5}),
    MultiCase("margin_ranking-real_targets-margin-0.3", "margin_ranking_loss", ranked_pairs_any_target,
              {"margin": -0.3}),
    MultiCase("gaussian_nll", "gaussian_nll_loss", gaussian("full")),
    MultiCase("gaussian_nll-full", "gaussian_nll_loss", gaussian("full"), {"full": True}),
    MultiCase("gaussian_nll-var_row", "gaussian_nll_loss", gaussian("row")),
    MultiCase("gaussian_nll-var_last1-eps0.1", "gaussian_nll_loss", gaussian("last1"), {"eps": 0.1}),
    MultiCase("gaussian_nll-var_first1-full", "gaussian_nll_loss", gaussian("first1"), {"full": True}),
    MultiCase("gaussian_nll-var_float", "gaussian_nll_loss", gaussian("float")),
    MultiCase("cosine_embedding", "cosine_embedding_loss", embedding_pairs),
    MultiCase("cosine_embedding-margin0.2", "cosine_embedding_loss", embedding_pairs, {"margin": 0.2}),
    MultiCase("cosine_embedding-margin-0.5", "cosine_embedding_loss", embedding_pairs, {"margin": -0.5}),
    MultiCase("triplet", "triplet_margin_loss", triplets),
    MultiCase("triplet-swap", "triplet_margin_loss", triplets, {"swap": True}),
    MultiCase("triplet-p1-margin0.5", "triplet_margin_loss", triplets, {"p": 1.0, "margin": 0.5}),
    MultiCase("triplet-p3-swap-eps0", "triplet_margin_loss", triplets, {"p": 3.0, "swap": True, "eps": 0.0}),
    MultiCase("triplet-p1.5", "triplet_margin_loss", triplets, {"p": 1.5}),
]

# "pair" and "gaussian" losses take any shape (0-d included); cosine_embedding_loss (D,) and
# (N, D); triplet_margin_loss any shape of at least one axis
MULTI_INPUT_SHAPES = [((), "contiguous"), ((7,), "strided"), ((6, 4), "transposed"), ((6, 4), "contiguous"),
                      ((3, 1), "strided"), ((9, 33), "strided"), ((2, 1100), "contiguous"),
                      ((2, 3, 5), "transposed"), ((2, 3, 2, 5), "strided")]


def multi_takes(case, shape):
    layout, kind = case.layout, getattr(case.make, "var_kind", "full")
    if layout == "rows_target":
        return len(shape) in (1, 2)
    if layout == "rows" or kind in ("row", "last1"):
        return len(shape) >= 1
    if kind == "first1":
        return len(shape) >= 2
    return True


def multi_params(cases, shapes):
    """pytest params (case, reduction, shape, layout) for the shapes each case takes."""
    import pytest

    return [pytest.param(c, r, shape, layout, id=f"{c.id}-{r}-{shape_id(shape)}-{layout}")
            for c in cases for r in c.reductions() for shape, layout in shapes if multi_takes(c, shape)]


def shape_id(shape):
    return "x".join(map(str, shape)) if shape else "0d"


# --- running a loss and checking it --------------------------------------------------------------

@dataclass
class Outputs:
    loss: object            # NAME(...)
    grad: np.ndarray        # NAME_grad(..., grad_output=grad_output)
    grad1: np.ndarray       # NAME_grad(...) with the default grad_output
    fused_loss: object      # NAME_with_grad(...)[0]
    fused_grad: np.ndarray  # NAME_with_grad(...)[1]


def evaluate(name, x, t, opts, reduction, grad_output):
    """Every entry point of loss `name` on the same arguments, checking none of them is modified."""
    from helpers import unmodified

    f, f_grad, f_with_grad = functions(name)
    with unmodified(x, t, grad_output, *opts.values()):
        loss = f(x, t, reduction=reduction, **opts)
        grad = f_grad(x, t, reduction=reduction, grad_output=grad_output, **opts)
        grad1 = f_grad(x, t, reduction=reduction, **opts)
        fused_loss, fused_grad = f_with_grad(x, t, reduction=reduction, **opts)
    return Outputs(loss, grad, grad1, fused_loss, fused_grad)


def check_outputs(out, expected, expected1, x, loss_shape):
    """`out` (from evaluate) against the reference for grad_output (`expected`) and for
    grad_output=1 (`expected1`); the fused and separate paths must agree (to rounding here; a
    test of its own asks for bit-identical results)."""
    from helpers import assert_close, assert_scalar_result

    dtype = x.dtype
    if loss_shape is None:
        assert_scalar_result(out.loss, dtype)
        assert_scalar_result(out.fused_loss, dtype)
    else:
        for loss in (out.loss, out.fused_loss):
            assert isinstance(loss, np.ndarray) and loss.dtype == dtype and loss.shape == loss_shape, \
                f"loss: {type(loss).__name__} {getattr(loss, 'dtype', '')}{getattr(loss, 'shape', '')}"
    for grad in (out.grad, out.grad1, out.fused_grad):
        assert isinstance(grad, np.ndarray) and grad.dtype == dtype and grad.shape == x.shape, \
            f"grad: {type(grad).__name__} {getattr(grad, 'dtype', '')}{getattr(grad, 'shape', '')}"
    assert_close(out.loss, expected.loss, dtype, expected.loss_mag, "loss")
    assert_close(out.grad, expected.grad, dtype, expected.grad_mag, "grad")
    assert_close(out.grad1, expected1.grad, dtype, expected1.grad_mag, "grad (grad_output=1)")
    assert_close(out.fused_loss, out.loss, dtype, expected.loss_mag, "NAME_with_grad loss vs NAME")
    assert_close(out.fused_grad, out.grad1, dtype, expected1.grad_mag, "NAME_with_grad grad vs NAME_grad")


def check_out_buffer(case, shape, loss_shape, reduction, dtype, rng):
    """NAME_grad(out=) and NAME_with_grad(out=) write into out (pre-filled with a sentinel) and
    return that very object, with the same bytes as without out; on non-contiguous inputs."""
    from helpers import assert_bitwise_equal, relayout, unmodified

    x, t, opts = case.build(rng, shape, dtype)
    x, t = relayout(x, "transposed"), relayout(t, "strided")
    _, f_grad, f_with_grad = functions(case.name)
    go = 0.5 if reduction != "none" else rng.normal(size=loss_shape).astype(dtype)
    with unmodified(x, t, go, *opts.values()):
        expected = f_grad(x, t, reduction=reduction, grad_output=go, **opts)
        out = np.full(shape, 12345.0, dtype)
        assert f_grad(x, t, reduction=reduction, grad_output=go, out=out, **opts) is out
        assert_bitwise_equal(out, expected, "NAME_grad(out=)")
        out2 = np.full(shape, 12345.0, dtype)
        _, result = f_with_grad(x, t, reduction=reduction, out=out2, **opts)
        assert result is out2
        assert_bitwise_equal(out2, f_with_grad(x, t, reduction=reduction, **opts)[1], "NAME_with_grad(out=)")


def check_finite_differences(name, x, t, opts, reduction, grad_output, h=1e-6, rtol=1e-6, atol=1e-7):
    """NAME_grad (float64) matches central differences of sum(grad_output * NAME(...))."""
    f, f_grad, _ = functions(name)

    def objective(xv):
        return float(np.sum(grad_output * f(xv, t, reduction=reduction, **opts)))

    fd = np.empty(x.shape)
    for i in np.ndindex(x.shape):
        xp, xm = x.copy(), x.copy()
        xp[i] += h
        xm[i] -= h
        fd[i] = (objective(xp) - objective(xm)) / (2 * h)
    grad = f_grad(x, t, reduction=reduction, grad_output=grad_output, **opts)
    np.testing.assert_allclose(grad, fd, rtol=rtol, atol=atol * max(1.0, np.abs(fd).max()))


def check_thread_invariance(case, shape, reduction, dtype, seed):
    """Loss, fused loss and gradients are bit-identical with 1, 2 and 3 threads."""
    from helpers import assert_bitwise_equal

    x, t, opts = case.build(np.random.default_rng(seed), shape, dtype)
    f, f_grad, f_with_grad = functions(case.name)
    results = []
    for n in (1, 2, 3):
        lossk.set_num_threads(n)
        assert lossk.get_num_threads() == n
        loss, grad = f_with_grad(x, t, reduction=reduction, **opts)
        results.append((np.asarray(f(x, t, reduction=reduction, **opts)), np.asarray(loss), grad,
                        f_grad(x, t, reduction=reduction, grad_output=0.75, **opts)))
    for n, other in ((2, results[1]), (3, results[2])):
        for a, b, what in zip(results[0], other, ("loss", "fused loss", "fused grad", "grad")):
            assert_bitwise_equal(a, b, f"{what}: 1 thread vs {n}")


def check_large_output_matches_chunks(case, shape, dtype, chunk, seed):
    """Outputs past 16 MiB take another code path in lossk (streaming stores): per-element losses
    and gradients (reduction "sum": no division) must equal those computed on small slices along
    the first axis (to rounding: a value may be computed in a vector body on one path and in a
    scalar tail on the other), also when written into a caller's out at an odd address."""
    from helpers import assert_close

    x, t, opts = case.build(np.random.default_rng(seed), shape, dtype)
    f, f_grad, f_with_grad = functions(case.name)
    per_position = {k: v for k, v in opts.items() if not (isinstance(v, np.ndarray) and v.shape == shape)}
    pieces_loss, pieces_grad = [], []
    for start in range(0, shape[0], chunk):
        part = slice(start, start + chunk)
        o = dict(per_position, **{k: v[part] for k, v in opts.items() if k not in per_position})
        pieces_loss.append(f(x[part], t[part], reduction="none", **o))
        pieces_grad.append(f_grad(x[part], t[part], reduction="sum", grad_output=0.5, **o))
    loss_expected = np.concatenate(pieces_loss).astype(np.float64)
    grad_expected = np.concatenate(pieces_grad).astype(np.float64)

    assert_close(f(x, t, reduction="none", **opts), loss_expected, dtype, what="loss")
    assert_close(f_grad(x, t, reduction="sum", grad_output=0.5, **opts), grad_expected, dtype, what="grad")
    buf = np.full(x.size + 1, np.nan, dtype)
    out = buf[1:].reshape(shape)                    # C-contiguous, not aligned to a vector
    loss, grad = f_with_grad(x, t, reduction="sum", out=out, **opts)
    assert grad is out and np.isnan(buf[0])
    assert_close(grad, 2 * grad_expected, dtype, what="fused grad into out")
    assert_close(loss, np.sum(loss_expected), dtype, np.sum(np.abs(loss_expected)), "fused loss")


GRAD_ONLY = ("out", "grad_output")


def check_rejected(name, make, exc, match):
    """Bad arguments (make() -> (input, target, options)) raise `exc` naming the argument (`match`)
    from every entry point that takes them (out= and grad_output: the gradient's), and nothing
    (input, target, options, out) is modified."""
    import pytest
    from helpers import unmodified

    x, t, opts = make()
    f, f_grad, f_with_grad = functions(name)
    for fn in [f_grad] if any(k in opts for k in GRAD_ONLY) else [f, f_grad, f_with_grad]:
        kw = dict(opts)
        if isinstance(kw.get("out"), np.ndarray) and kw["out"].flags.writeable and kw["out"] is not x:
            kw["out"][...] = 777.0          # a sentinel that must survive
        with unmodified(x, t, *kw.values()), pytest.raises(exc, match=match):
            fn(x, t, **kw)


UNUSUAL = ["byteswapped", "misaligned", "broadcast"]


def unusual(a, kind):
    """`a`'s values in an unusual ndarray: non-native byte order, an address that is not a
    multiple of the item size, or a zero-stride broadcast view of its first row (values change)."""
    if kind == "byteswapped":
        return a.astype(a.dtype.newbyteorder())
    if kind == "misaligned":
        buf = bytearray(a.nbytes + 1)
        m = np.frombuffer(buf, dtype=a.dtype, count=a.size, offset=1).reshape(a.shape)
        m[...] = a
        return m
    if kind == "broadcast":
        return np.broadcast_to(a[:1], a.shape)
    raise ValueError(kind)


def check_unusual_arrays(case, shape, kind, dtype, rng):
    """Input and target in an unusual ndarray give the results of plain copies of them, or (for
    a byte order lossk does not compute in) are rejected with a TypeError naming the argument;
    never a silently different number."""
    from helpers import assert_bitwise_equal

    x, t, opts = case.build(rng, shape, dtype)
    xu, tu = unusual(x, kind), unusual(t, kind)
    xc, tc = np.array(xu, dtype=x.dtype), np.array(tu, dtype=t.dtype)      # native, contiguous copies
    f, f_grad, f_with_grad = functions(case.name)
    try:
        results = [np.asarray(f(xu, tu, reduction="none", **opts)), np.asarray(f(xu, tu, **opts)),
                   f_grad(xu, tu, **opts)]
    except TypeError as e:
        assert kind == "byteswapped" and ("input" in str(e) or "target" in str(e)), f"{kind}: {e}"
        return
    expected = [np.asarray(f(xc, tc, reduction="none", **opts)), np.asarray(f(xc, tc, **opts)),
                f_grad(xc, tc, **opts)]
    for got, want, what in zip(results, expected, ("none", "mean", "grad")):
        assert_bitwise_equal(got.astype(want.dtype), want, f"{kind} {what}")


# --- ctc_loss --------------------------------------------------------------------------------------

def log_softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def ctc_problem(rng, T, N, C, S, dtype, blank=0, layout="padded", impossible=False, repeats=False):
    """log_probs (T, N, C), targets (padded (N, S), concatenated, or unbatched (S,) for N = 1), and
    lengths: some empty targets, some short inputs; `impossible`: a sequence with too few steps."""
    lp = log_softmax(rng.normal(0, 2, (T, N, C))).astype(dtype)
    labels = np.array([c for c in range(C) if c != blank])
    targets = rng.choice(labels, (N, S)) if len(labels) else np.zeros((N, S), np.int64)
    if repeats and S >= 2:
        targets[:, 1] = targets[:, 0]
    il = rng.integers(0, T + 1, N)
    tl = np.minimum(rng.integers(0, S + 1, N), np.maximum(il // 2, 0))
    if N >= 2:
        il[0], tl[0] = T, min(S, T // 2)
        tl[1] = 0
    if impossible and N >= 2 and S >= 1:
        il[N - 1], tl[N - 1] = 0, 1
    if layout == "unbatched":
        return lp[:, 0], targets[0, :tl[0]], int(il[0]), int(tl[0])
    if layout == "concatenated":
        targets = np.concatenate([targets[n, :tl[n]] for n in range(N)] + [np.zeros(0, np.int64)]).astype(np.int64)
    return lp, targets, il, tl

"""Every loss of :mod:`lossk.functional` over Dask arrays, for data larger than one machine.

``lossk.dask.NAME``, ``NAME_grad`` and ``NAME_with_grad`` take the arguments of their
:mod:`lossk.functional` namesakes (``out`` aside), as Dask arrays or anything NumPy reads, and
return Dask arrays: nothing runs until they are computed, on whatever scheduler is in use (threads,
processes or a ``dask.distributed`` cluster). Each chunk runs lossk's C kernel in a task of its own.

- A reduced loss: each chunk gives its partial, the sum of its losses in double precision (and,
  for a weighted mean, its total weight); the partials are gathered by a tree of tasks and added
  exactly (``math.fsum``: correctly rounded, so neither the tree nor the order matters), divided by
  the whole's divisor and rounded once to the input's dtype.
- A gradient: the divisor of a mean is known from the shapes (no pass over the data), or, for
  a weighted mean (class weights and ``ignore_index``, the per-element weight of ``l1_loss`` and
  ``mse_loss``), is computed first from the targets or weights alone; then each chunk's gradient
  is a task of the kernel, scaled as the whole array's would be. ``NAME_with_grad`` computes each
  chunk's loss and gradient in one task (``dask.compute(loss, grad)`` shares them).
- Reduction "none" gives a Dask array chunked like the input (without the axes a loss is taken
  over).

Chunking: classification losses need whole class rows in a chunk, margin and row losses (and
``gaussian_nll_loss``'s shared variances) whole rows of their last axis, CTC whole sequences (the
time and class axes): those axes are rechunked into one chunk. Other arrays are rechunked to the
input's chunks; weights that broadcast keep their shape.

Exactness: reduction "none" and the gradients of unweighted means and sums are bit-identical to
lossk on the whole array in memory. A reduced loss differs from the in-memory one only by how its
double-precision sum is rounded (the kernel adds its fixed blocks in order, lossk.dask adds the
chunks' sums exactly), which is below a float32 result's rounding, and a few units in the last
place of a float64 one; a weighted mean's divisor likewise. The result depends on the data and
its chunking alone: bit-identical for any scheduler, number of workers, thread count or retry.

Bad arguments raise the in-memory functions' errors when the graph is built; what only the data
can tell (a class index out of range, a probability outside [0, 1]) raises when it is computed,
naming the element's position in the whole array.
"""
import functools
import math
import re

import numpy as np

try:
    import dask
    import dask.array as da
    from dask.highlevelgraph import HighLevelGraph
except ImportError as e:   # pragma: no cover - the extra is installed by the tests
    raise ImportError("lossk.dask needs Dask: pip install 'lossk[dask]'") from e

from . import _core, functional
from ._core import BOTH, GRAD, LOSS
from ._losses import CLASSIFICATION, CTC, ELEMENTWISE, LOSSES, MARGIN, MULTI_INPUT, SUFFIXES, define

__all__ = [loss.name + suffix for loss in LOSSES for suffix in SUFFIXES]

SPLIT_EVERY = 32   # partials per task of the tree that gathers them


# --- the plan: how a loss's arrays are split into the blocks of one array (the driver) ---------------

class _Arg:
    """An argument: a Dask array whose axis i follows the driver's axis axes[i] (None: one chunk),
    or a constant passed whole to every block (axes None)."""

    def __init__(self, name, value, axes=None, sample=None):
        self.name, self.value, self.axes, self.sample = name, value, axes, sample

    def key(self, index):
        return (self.value.name,) + tuple(0 if k is None else index[k] for k in self.axes)

    def offset(self, index):
        """Where this argument's block for the driver's block `index` begins in it."""
        if not hasattr(self, "starts"):
            self.starts = [np.cumsum((0,) + c) for c in self.value.chunks]
        return tuple(0 if k is None else int(self.starts[i][index[k]]) for i, k in enumerate(self.axes))


class _Plan:
    """driver: the Dask array whose blocks are the tasks; args: the binding's arrays, in its order
    (an _Arg each; the keywords' arrays in `keyword_args`); loss_axes: the driver axes of the
    per-element loss; grads: (argument position, its axes) per gradient; divisor: a mean's,
    known (a float) or None when `normaliser` computes it per block; call(binding, blocks, kw):
    the binding called on one block's arrays."""

    def __init__(self, driver, args, loss_axes, grads, divisor, call, keyword_args=(), normaliser=None):
        self.driver, self.args, self.loss_axes, self.grads = driver, args, loss_axes, grads
        self.divisor, self.call, self.keyword_args, self.normaliser = divisor, call, keyword_args, normaliser


def _as_dask(a, name):
    if a is None or isinstance(a, da.Array):
        return a
    if isinstance(a, (float, int, np.floating, np.integer)) and not isinstance(a, (bool, np.bool_)):
        return a
    return da.from_array(_core.as_array(a, name), chunks=-1)


def _aligned(a, name, axes, driver, like="input"):
    """a rechunked so that its axes follow the driver's (axes[i] is None: one chunk)."""
    want = tuple(None if k is None else driver.shape[k] for k in axes)
    if a.ndim != len(axes) or any(w is not None and w != s for w, s in zip(want, a.shape)):
        expected = tuple("*" if w is None else w for w in want)
        raise ValueError(f"{name}: expected shape {expected} to go with {like} {driver.shape}, got {a.shape}")
    return a.rechunk(tuple(driver.chunks[k] if k is not None else -1 for k in axes))


def _whole(driver, axes):
    return driver.rechunk({k: -1 for k in axes}) if axes else driver


def _broadcasting(w, name, driver):
    """A weight that broadcasts to the driver: its axes, right-aligned, follow the driver's where
    they have its size (a size-1 axis stays one chunk)."""
    if w is None or not isinstance(w, da.Array):
        return _Arg(name, w)
    try:
        ok = np.broadcast_shapes(w.shape, driver.shape) == driver.shape
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f"{name}: shape {w.shape} does not broadcast to input shape {driver.shape}")
    lead = driver.ndim - w.ndim
    axes = tuple(None if s == 1 and driver.shape[lead + i] != 1 else lead + i for i, s in enumerate(w.shape))
    return _Arg(name, _aligned(w, name, axes, driver), axes)


def _rows(shape, axis):
    return float(math.prod(shape[:axis]) * math.prod(shape[axis + 1:])) if shape else 1.0


def _elementwise_plan(loss, arrays, kw):
    x = _as_dask(arrays[0], "input")
    t = _aligned(_as_dask(arrays[1], "target"), "target", tuple(range(x.ndim)), x)
    args = [_Arg("input", x, tuple(range(x.ndim))), _Arg("target", t, tuple(range(x.ndim)))]
    weights = [_broadcasting(_as_dask(kw.pop(k, None), k), k, x) for k in ("weight", "pos_weight")]
    if loss.shaped_weight and weights[0].value is not None and weights[0].value.shape != x.shape:
        raise ValueError(f"weight: expected shape {x.shape} like input, got {weights[0].value.shape}")
    divisor = float(x.size)
    normaliser = None
    if loss.shaped_weight == "sum" and weights[0].value is not None:
        divisor, normaliser = None, _weight_sum
    return _Plan(x, args, tuple(range(x.ndim)), ((0, args[0].axes),), divisor, _call_pair, weights, normaliser)


def _classification_plan(loss, arrays, kw):
    x = _as_dask(arrays[0], "input")
    if x.ndim == 0:
        raise ValueError("input: expected shape (C,), (N, C) or (N, C, d1, ..., dK), got a 0-d array")
    x = _whole(x, (0,) if x.ndim == 1 else (1,))
    t = _as_dask(arrays[1], "target")
    spatial = () if x.ndim == 1 else (0,) + tuple(range(2, x.ndim))
    soft = t.dtype.kind == "f"
    t_axes = tuple(range(x.ndim)) if soft else spatial
    t = _aligned(t, "target", t_axes, x)
    weight = _as_dask(kw.pop("weight", None), "weight")
    classes = x.shape[0 if x.ndim == 1 else 1]
    if weight is not None and weight.shape != (classes,):
        raise ValueError(f"weight: expected shape ({classes},), one weight per class, got {weight.shape}")
    weight = _Arg("weight", None if weight is None else weight.rechunk(-1), None if weight is None else (None,))
    args = [_Arg("input", x, tuple(range(x.ndim))), _Arg("target", t, t_axes)]
    if soft:
        return _Plan(x, args, spatial, ((0, args[0].axes),), x.size / classes, _call_pair, [weight])
    return _Plan(x, args, spatial, ((0, args[0].axes),), None, _call_pair, [weight], _class_weight_sum)


def _margin_plan(loss, arrays, kw):
    x = _as_dask(arrays[0], "input")
    if x.ndim == 0 or (loss.targets != "values" and x.ndim > 2):
        raise ValueError(f"input: expected shape (C,) or (N, C), got {x.shape}" if x.ndim
                         else "input: expected at least one axis (the classes, last), got a 0-d array")
    last = x.ndim - 1
    x = _whole(x, (last,))
    t = _as_dask(arrays[1], "target")
    t_axes = tuple(range(last)) if loss.targets == "class" else tuple(range(x.ndim))
    t = _aligned(t, "target", t_axes, x)
    weight = _as_dask(kw.pop("weight", None), "weight")
    if loss.targets == "values":
        weight = _broadcasting(weight, "weight", x)
    else:
        weight = _Arg("weight", None if weight is None else weight.rechunk(-1), None if weight is None else (None,))
    args = [_Arg("input", x, tuple(range(x.ndim))), _Arg("target", t, t_axes)]
    return _Plan(x, args, tuple(range(last)), ((0, args[0].axes),), _rows(x.shape, last), _call_pair, [weight])


def _multi_input_plan(loss, arrays, kw):
    names = loss.arguments
    x = _as_dask(arrays[0], names[0])
    layout = loss.layout
    every = tuple(range(x.ndim))
    if layout in ("rows", "rows_target"):
        if x.ndim == 0 or (layout == "rows_target" and x.ndim > 2):
            raise ValueError(f"{names[0]}: expected shape (D,) or (N, D), got {x.shape}" if layout == "rows_target"
                             else f"{names[0]}: expected at least one axis, got a 0-d array")
        x = _whole(x, (x.ndim - 1,))
    var_axis = None
    arrays = list(arrays)
    if layout == "gaussian":
        arrays[2] = _as_dask(arrays[2], "var")
    if layout == "gaussian" and isinstance(arrays[2], da.Array) and arrays[2].shape != x.shape:
        var = arrays[2]
        if var.shape == x.shape[:-1] and x.ndim:
            var_axis = x.ndim - 1
        elif var.ndim == x.ndim:
            differ = [k for k in range(x.ndim) if var.shape[k] != x.shape[k]]
            if len(differ) == 1 and var.shape[differ[0]] == 1:
                var_axis = differ[0]
        if var_axis is None:
            raise ValueError(f"var: expected shape {x.shape} like input, {x.shape[:-1]} (one variance per row of the "
                             f"last axis) or {x.shape} with one axis of size 1, got {var.shape}")
        x = _whole(x, (var_axis,))
    args = [_Arg(names[0], x, every)]
    for k in range(1, len(names)):
        a = _as_dask(arrays[k], names[k])
        if not isinstance(a, da.Array):            # gaussian_nll's var as a number
            args.append(_Arg(names[k], a))
            continue
        if layout == "rows_target" and names[k] == "target":
            axes = every[:-1]
        elif names[k] == "var" and var_axis is not None:
            axes = tuple(None if i == var_axis else i for i in every) if a.ndim == x.ndim \
                else every[:-1]
        else:
            axes = every
        args.append(_Arg(names[k], _aligned(a, names[k], axes, x, names[0]), axes))
    loss_axes = every[:-1] if layout in ("rows", "rows_target") else every
    divisor = _rows(x.shape, x.ndim - 1) if layout in ("rows", "rows_target") else float(x.size)
    grads = tuple((k, args[k].axes) for k in loss.differentiable)
    return _Plan(x, args, loss_axes, grads, divisor, _call_tuple)


def _ctc_plan(loss, arrays, kw):
    x = _as_dask(arrays[0], "log_probs")
    if x.ndim not in (2, 3):
        raise ValueError(f"log_probs: expected shape (T, N, C) or (T, C), got {x.shape}")
    if x.ndim == 2:       # one sequence: one block
        x = x.rechunk(-1)
        args = [_Arg("log_probs", x, (0, 1))]
        for n, a in zip(loss.arguments[1:], arrays[1:]):
            a = _as_dask(a, n)
            args.append(_Arg(n, a.rechunk(-1), (None,) * a.ndim) if isinstance(a, da.Array) else _Arg(n, a))
        return _Plan(x, args, (), ((0, (0, 1)),), 1.0, _call_ctc)
    x = _whole(x, (0, 2))
    lengths = []
    for n, a in zip(loss.arguments[2:], arrays[2:]):
        a = _as_dask(a, n)
        if not isinstance(a, da.Array):
            raise ValueError(f"{n}: expected shape ({x.shape[1]},), one length per sequence, got an integer")
        lengths.append(_Arg(n, _aligned(a, n, (1,), x, "log_probs"), (1,)))
    targets = _as_dask(arrays[1], "targets")
    if targets.ndim == 2:
        targets = _Arg("targets", _aligned(targets, "targets", (1, None), x, "log_probs"), (1, None))
    elif targets.ndim == 1:
        # concatenated: each block's sequences' targets are one chunk, cut where the lengths say
        tl = np.asarray(dask.compute(lengths[1].value)[0], dtype=np.int64)
        if tl.sum() != targets.shape[0]:
            raise ValueError(f"targets: expected {int(tl.sum())} class indices (the sum of target_lengths) "
                             f"concatenated, got {targets.shape[0]}")
        bounds = np.cumsum((0,) + x.chunks[1])
        cuts = np.concatenate(([0], np.cumsum(tl)))[bounds]
        targets = _Arg("targets", targets.rechunk((tuple(np.diff(cuts).tolist()),)), (1,),
                       sample=np.zeros(0, targets.dtype))   # the probe's sequence has no target
    else:
        raise ValueError(f"targets: expected shape (N, S) (padded) or (sum of target_lengths,) (concatenated), "
                         f"got {targets.shape}")
    args = [_Arg("log_probs", x, (0, 1, 2)), targets] + lengths
    return _Plan(x, args, (1,), ((0, (0, 1, 2)),), float(x.shape[1]), _call_ctc)


_PLANS = {ELEMENTWISE: _elementwise_plan, CLASSIFICATION: _classification_plan, MARGIN: _margin_plan,
          MULTI_INPUT: _multi_input_plan, CTC: _ctc_plan}


# --- what runs in a block's task --------------------------------------------------------------------

def _call_pair(binding, blocks, kw):
    return binding(blocks[0], blocks[1], **kw)


def _call_tuple(binding, blocks, kw):
    return binding(tuple(blocks), **kw)


def _call_ctc(binding, blocks, kw):
    return binding(*blocks, **kw)


_POSITION = re.compile(r"\b(\w+)\[([0-9, ]*)\]")


def _globally(error, offsets):
    """error's message with each position name[i, ...] of a block made the whole array's."""
    def shift(m):
        off = offsets.get(m.group(1))
        if off is None or not m.group(2):
            return m.group(0)
        pos = [int(p) + o for p, o in zip(m.group(2).split(","), off)]
        return f"{m.group(1)}[{', '.join(map(str, pos))}]"
    return type(error)(_POSITION.sub(shift, str(error)))


def _block(binding, call, kw, names, keyword_names, offsets, divisor, grad_output, *blocks):
    """The binding on one block's arrays (its first len(names) are the binding's arrays, the rest
    its keyword arrays)."""
    n = len(names)
    keywords = dict(kw, **dict(zip(keyword_names, blocks[n:])))
    if divisor is not None:
        keywords["divisor"] = divisor
    if grad_output is not None:
        keywords["grad_output"] = grad_output
    try:
        return call(binding, blocks[:n], keywords)
    except ValueError as e:
        raise _globally(e, offsets) from None


def _weight_sum(blocks, keyword_blocks, kw):
    return float(np.sum(keyword_blocks["weight"], dtype=np.float64))


def _class_weight_sum(blocks, keyword_blocks, kw):
    """The summed weight of a block's non-ignored targets, checking each index as the kernel does."""
    x, t, w = blocks[0], blocks[1], keyword_blocks.get("weight")
    classes = x.shape[0 if x.ndim == 1 else 1]
    ignore = kw.get("ignore_index", -100)
    t = np.asarray(t)
    kept = t != ignore
    bad = kept & ((t < 0) | (t >= classes))
    if bad.any():
        k = int(np.argmax(bad.reshape(-1)))
        pos = np.unravel_index(k, t.shape) if t.ndim else ()
        raise ValueError(f"target: class indices must be in [0, {classes}) or equal ignore_index ({ignore}); "
                         f"target[{', '.join(map(str, pos))}] is {t.reshape(-1)[k]}")
    if w is None:
        return float(np.count_nonzero(kept))
    return float(np.sum(np.asarray(w, dtype=np.float64)[t[kept]]))


def _normalised(normaliser, kw, names, keyword_names, offsets, *blocks):
    """A block's part of a weighted mean's divisor, as a row [weight]."""
    n = len(names)
    try:
        return np.array([[normaliser(blocks[:n], dict(zip(keyword_names, blocks[n:])), kw)]])
    except ValueError as e:
        raise _globally(e, offsets) from None


def _exact_sum(values):
    """The sum of values (any shape), correctly rounded when it is finite."""
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    if np.isfinite(values).all():
        try:
            return math.fsum(values)
        except OverflowError:
            pass
    return float(np.sum(values))


def _gathered(name, keys, finish, graph, *extra):
    """Tasks gathering `keys`' rows SPLIT_EVERY at a time into one (name,) whose value is
    finish(all the rows, *extra); the tree's shape only groups, the rows keep their order."""
    level = 0
    while len(keys) > SPLIT_EVERY:
        groups = [keys[i:i + SPLIT_EVERY] for i in range(0, len(keys), SPLIT_EVERY)]
        keys = [(f"{name}-tree{level}", j) for j in range(len(groups))]
        graph.update({k: (np.concatenate, g) for k, g in zip(keys, groups)})
        level += 1
    graph[(name,)] = (finish, (np.concatenate, keys), *extra)
    return (name,)


# --- building the graph -----------------------------------------------------------------------------

def _pick(path, value):
    for k in path:
        value = value[k]
    return value


def _row(parts, weight=None):
    """A block's partial as one row [sum, divisor] (weight: the divisor the normaliser found)."""
    return np.array([[parts[0], parts[1] if weight is None else weight]])


def _value_row(value):
    return np.array([[float(value)]])


def _grad_total(rows, dtype):
    return dtype.type(_exact_sum(rows[:, 0]))


def _probe(plan, binding, kw, grad_output):
    """The binding on arrays shaped like one element of each block (the axes a block holds whole
    kept): the in-memory function's checks of dtypes and options, with its messages, before any
    task runs."""
    driver = plan.driver
    small = tuple(s if len(c) == 1 else min(s, 1) for s, c in zip(driver.shape, driver.chunks))

    def sample(arg):
        if arg.sample is not None:
            return arg.sample
        if not isinstance(arg.value, da.Array):
            return arg.value
        shape = tuple(arg.value.shape[i] if k is None else small[k] for i, k in enumerate(arg.axes))
        return np.zeros(shape, arg.value.dtype)

    keywords = dict(kw, **{a.name: sample(a) for a in plan.keyword_args})  # None stays None
    if grad_output is not None:
        keywords["grad_output"] = sample(grad_output) if isinstance(grad_output, _Arg) else grad_output
    plan.call(binding, [sample(a) for a in plan.args], keywords)


def _dask_array(graph, name, chunks, dtype, dependencies):
    layer = HighLevelGraph.from_collections(name, dict(graph), dependencies=dependencies)
    return da.Array(layer, name, chunks, dtype=dtype, meta=np.empty((0,) * len(chunks), dtype))


def _compute(loss, arrays, options, mode, grad_output=None):
    """NAME (mode LOSS), NAME_grad (GRAD) or NAME_with_grad (BOTH) of `loss` over Dask arrays."""
    options = dict(options)
    reduction = options.pop("reduction")
    binding, kw = functional.keywords(loss, options)
    if reduction not in loss.reductions:
        raise ValueError(f"reduction: expected one of {', '.join(map(repr, loss.reductions))}, got {reduction!r}")
    plan = _PLANS[loss.family](loss, arrays, kw)
    driver, dtype = plan.driver, plan.driver.dtype
    reduced = reduction != "none"
    go = grad_output
    if isinstance(grad_output, da.Array) or (grad_output is not None and np.ndim(grad_output) > 0):
        if reduced:
            raise ValueError(f"grad_output: expected a scalar for a reduced loss, got {type(grad_output).__name__} "
                             f"of shape {np.shape(grad_output)}")
        go = _Arg("grad_output", _aligned(_as_dask(grad_output, "grad_output"), "grad_output", plan.loss_axes,
                                          driver, "the loss of input"), plan.loss_axes)
    keyword_args = [a for a in plan.keyword_args if a.value is not None]
    call_kw = dict(kw, reduction=reduction, mode=mode)
    _probe(plan, binding, call_kw, go)

    every = plan.args + keyword_args + ([go] if isinstance(go, _Arg) else [])
    dependencies = [a.value for a in every if isinstance(a.value, da.Array)]
    name = f"lossk-{loss.name}-" + dask.base.tokenize(
        loss.name, mode, reduction, sorted(kw.items(), key=str), [a.value for a in every],
        None if isinstance(go, _Arg) else go)
    names = [a.name for a in plan.args]
    keyword_names = [a.name for a in keyword_args]
    indices = list(np.ndindex(*driver.numblocks))
    graph = {}

    def refs(index, args):
        return [a.key(index) if isinstance(a.value, da.Array) else a.value for a in args]

    def offsets(index):
        return {a.name: a.offset(index) for a in every if isinstance(a.value, da.Array)}

    # the divisor of a mean: from the shapes, or the normaliser's pass (for a gradient, before it)
    divisor = None
    if reduction == "batchmean":
        divisor = float(driver.shape[0]) if driver.ndim else 1.0
    elif reduction == "mean":
        divisor = plan.divisor
    weighted = reduction == "mean" and divisor is None

    def normalised(index):
        return (functools.partial(_normalised, plan.normaliser, kw, names, keyword_names, offsets(index)),
                *refs(index, plan.args + keyword_args))

    if weighted and mode & GRAD:
        weights = []
        for index in indices:
            weights.append((f"{name}-weight",) + index)
            graph[weights[-1]] = normalised(index)
        divisor = _gathered(f"{name}-divisor", weights, _exact_sum, graph)

    block_kw = dict(call_kw, parts=bool(mode & LOSS) and reduced)
    blocks = {}
    for index in indices:
        key = (f"{name}-block",) + index
        graph[key] = (functools.partial(_block, binding, plan.call, block_kw, names, keyword_names, offsets(index)),
                      divisor if mode & GRAD and reduction in ("mean", "batchmean") else None,
                      go.key(index) if isinstance(go, _Arg) else go if mode == GRAD else None,
                      *refs(index, plan.args + keyword_args))
        blocks[index] = key
    results = []
    if mode & LOSS:
        out = f"{name}-loss"
        path = (0,) if mode == BOTH else ()
        if reduced:
            rows = []
            for index in indices:
                rows.append((f"{out}-part",) + index)
                value = (_pick, path, blocks[index])
                if weighted and not mode & GRAD:   # the block's weight, found in a task beside its loss's
                    graph[rows[-1]] = (_row, value, (_pick, (0, 0), normalised(index)))
                else:
                    graph[rows[-1]] = (_row, value)
            finish = functools.partial(_finish, reduction=reduction, dtype=dtype,
                                       nan_when_unweighted=loss.family == CLASSIFICATION)
            _gathered(out, rows, finish, graph, divisor if not weighted or mode & GRAD else None)
            results.append(_dask_array(graph, out, (), dtype, dependencies))
        else:
            for index in indices:
                graph[(out,) + tuple(index[k] for k in plan.loss_axes)] = (_pick, path, blocks[index])
            results.append(_dask_array(graph, out, tuple(driver.chunks[k] for k in plan.loss_axes), dtype,
                                       dependencies))
    if mode & GRAD:
        grads = []
        for j, (position, axes) in enumerate(plan.grads):
            arg, out = plan.args[position], f"{name}-grad{j}"
            path = ((1,) if mode == BOTH else ()) + ((j,) if loss.family == MULTI_INPUT else ())
            if not isinstance(arg.value, da.Array):   # gaussian_nll's var as a number: a sum over blocks
                rows = [(f"{out}-part",) + index for index in indices]
                graph.update({row: (_value_row, (_pick, path, blocks[index])) for row, index in zip(rows, indices)})
                _gathered(out, rows, functools.partial(_grad_total, dtype=dtype), graph)
                grads.append(_dask_array(graph, out, (), dtype, dependencies))
                continue
            for index in indices:
                graph[(out,) + tuple(0 if k is None else index[k] for k in axes)] = (_pick, path, blocks[index])
            chunks = tuple(driver.chunks[k] if k is not None else (arg.value.shape[i],) for i, k in enumerate(axes))
            grads.append(_dask_array(graph, out, chunks, arg.value.dtype, dependencies))
        results.append(tuple(grads) if loss.family == MULTI_INPUT else grads[0])
    return results[0] if len(results) == 1 else tuple(results)


def _finish(rows, divisor=None, *, reduction, dtype, nan_when_unweighted):
    """The reduced loss from the blocks' [sum, divisor] rows (divisor None: theirs, added)."""
    total = _exact_sum(rows[:, 0])
    if reduction == "sum":
        return dtype.type(total)
    if divisor is None:
        divisor = _exact_sum(rows[:, 1])
    if nan_when_unweighted and divisor == 0:
        return dtype.type(np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        return dtype.type(np.float64(total) / np.float64(divisor))


# --- the functions -----------------------------------------------------------------------------------

_MODES = {"": LOSS, "_grad": GRAD, "_with_grad": BOTH}


def _define(loss):
    arrays = ", ".join(loss.arguments)
    for suffix in SUFFIXES:
        extra = (("grad_output", 1.0),) if suffix == "_grad" else ()
        namespace = {"_compute": _compute, "_loss": loss, "_mode": _MODES[suffix]}
        options = "{" + ", ".join(f"{o!r}: {o}" for o, _ in loss.options) + "}"
        grad = ", grad_output" if suffix == "_grad" else ""
        fn = define(loss.name + suffix, f"{arrays}, *, {loss.parameters(extra)}",
                    f"_compute(_loss, ({arrays},), {options}, _mode{grad})", namespace, __name__)
        fn.__doc__ = (f"lossk.{loss.name}{suffix} over Dask arrays (see the module's documentation): "
                      "returns Dask arrays.\n\n" + getattr(functional, loss.name + suffix).__doc__)
        globals()[fn.__name__] = fn


for _loss in LOSSES:
    _define(_loss)
del _loss

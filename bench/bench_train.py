"""Training speed of the CIFAR-10 network: lossk.nn against PyTorch, same run, same threads.

    python bench/bench_train.py [--net cifar10|pytorch-tutorial] [--batch 64] [--threads 2] [--steps 30]
                                [--layers] [--data DIR]

--net pytorch-tutorial times PyTorch's "Training a classifier" network (conv, ReLU, pool twice,
then three Linear layers) instead of lossk's (python -m lossk.cifar10).

Steps of the two frameworks alternate, so both see the same machine load; the median step time
of each is reported as images/s, with the ratio lossk / PyTorch; likewise for inference (a forward
pass without gradients). --layers adds the time of each
convolution's forward, input-gradient and weight-gradient kernels against PyTorch's, and of three 3x3
convolutions (padding 1) such as other small networks use (Winograd F(6x6, 3x3) for 16x16 and
12x12 images, F(4x4, 3x3) for 8x8); of the two networks' convolutions fused with the 2x2 max pooling
after them, as Sequential runs them (forward with and without the argmax, and the gradients through
it, against PyTorch's separate calls); of 2x2 max pooling on its own; and of the linear layers of
both networks and one (1024 -> 512). The convolutions include PyTorch's tutorial network's two
(unpadded).
Uses the first CIFAR-10 training batch when it is found (--data), random images otherwise.
"""
import argparse
import os
import pickle
import time

import numpy as np

import lossk
import lossk.nn as nn
import lossk.optim as optim
from lossk import _core


# layers as (name, arguments): lossk.nn and torch.nn take the same ones
NETS = {
    # lossk's CIFAR-10 network (python -m lossk.cifar10)
    "cifar10": [("Conv2d", (3, 32, 5), {"padding": 2}), ("MaxPool2d", (2,), {}),
                ("Conv2d", (32, 32, 5), {"padding": 2}), ("MaxPool2d", (2,), {}),
                ("Conv2d", (32, 64, 5), {"padding": 2}), ("MaxPool2d", (2,), {}),
                ("Flatten", (), {}), ("Linear", (1024, 64), {}), ("Linear", (64, 10), {})],
    # PyTorch's "Training a classifier" tutorial network: conv, ReLU, pool twice, then three Linear
    "pytorch-tutorial": [("Conv2d", (3, 6, 5), {}), ("ReLU", (), {}), ("MaxPool2d", (2,), {}),
                         ("Conv2d", (6, 16, 5), {}), ("ReLU", (), {}), ("MaxPool2d", (2,), {}),
                         ("Flatten", (), {}), ("Linear", (400, 120), {}), ("ReLU", (), {}),
                         ("Linear", (120, 84), {}), ("ReLU", (), {}), ("Linear", (84, 10), {})],
}


def build(layers, module):
    """The network `layers` (a NETS entry) from `module` (lossk.nn or torch.nn)."""
    return module.Sequential(*(getattr(module, name)(*args, **kwargs) for name, args, kwargs in layers))


def load_images(path, n, rng):
    f = os.path.join(path, "data_batch_1")
    if os.path.exists(f):
        with open(f, "rb") as fh:
            d = pickle.load(fh, encoding="bytes")
        x = d[b"data"][:n].reshape(-1, 3, 32, 32).astype(np.float32) / 255.0
        return (x - 0.5) / 0.5, np.asarray(d[b"labels"][:n], np.int64), "CIFAR-10 data_batch_1"
    return rng.standard_normal((n, 3, 32, 32)).astype(np.float32), rng.integers(0, 10, n), "random images"


def interleaved(fns, steps, warmup=3):
    """Median seconds of each function, calls alternating."""
    for f in fns:
        for _ in range(warmup):
            f()
    times = [[] for _ in fns]
    for _ in range(steps):
        for i, f in enumerate(fns):
            t0 = time.perf_counter()
            f()
            times[i].append(time.perf_counter() - t0)
    return [float(np.median(t)) for t in times]


def bench_layers(torch, batch, steps, rng):
    print(f"\n{'conv layer':<22}{'op':<6}{'lossk ms':>10}{'torch ms':>10}{'speedup':>9}")
    # lossk's network's convolutions, 3x3 ones such as other small networks use, and PyTorch's
    # tutorial network's two (no padding: rows of 28 and 10)
    for c, k, h, r, pad in ((3, 32, 32, 5, 2), (32, 32, 16, 5, 2), (32, 64, 8, 5, 2), (32, 32, 16, 3, 1),
                            (32, 32, 12, 3, 1), (64, 64, 8, 3, 1), (3, 6, 32, 5, 0), (6, 16, 14, 5, 0)):
        x = rng.standard_normal((batch, c, h, h)).astype(np.float32)
        w = (rng.standard_normal((k, c, r, r)) * 0.1).astype(np.float32)
        b = np.zeros(k, np.float32)
        o = h + 2 * pad - r + 1
        g = rng.standard_normal((batch, k, o, o)).astype(np.float32)
        dw, db = np.zeros_like(w), np.zeros_like(b)
        tx, tw, tb, tg = (torch.from_numpy(a) for a in (x, w, b, g))
        cb = torch.ops.aten.convolution_backward
        ops = [
            ("fwd", lambda: _core.conv2d_forward(x, w, b, (1, 1), (pad, pad)),
             lambda: torch.nn.functional.conv2d(tx, tw, tb, padding=pad)),
            ("dX", lambda: _core.conv2d_backward_input(g, w, x.shape, (1, 1), (pad, pad)),
             lambda: cb(tg, tx, tw, [k], [1, 1], [pad, pad], [1, 1], False, [0, 0], 1, [True, False, False])),
            ("dW", lambda: _core.conv2d_backward_weight(x, g, dw, db, (1, 1), (pad, pad)),
             lambda: cb(tg, tx, tw, [k], [1, 1], [pad, pad], [1, 1], False, [0, 0], 1, [False, True, True])),
        ]
        for name, fl, ft in ops:
            tl, tt = interleaved([fl, ft], steps)
            label = f"{r}x{r} {c}->{k} {h}x{h}" + ("" if pad == r // 2 else f" pad {pad}")
            print(f"{label:<22}{name:<6}{tl * 1e3:>10.2f}{tt * 1e3:>10.2f}{tt / tl:>8.2f}x")
    print(f"\n{'conv + 2x2 max pool':<22}{'op':<6}{'lossk ms':>10}{'torch ms':>10}{'speedup':>9}")
    # the networks' convolutions as Sequential runs them, fused with the pooling after them: forward
    # with the argmax (training) and without (inference, no_grad), and the gradients through the
    # argmax; PyTorch's are its separate calls, as autograd makes them
    mp_backward = torch.ops.aten.max_pool2d_with_indices_backward
    for c, k, h, r, pad in ((3, 32, 32, 5, 2), (32, 32, 16, 5, 2), (32, 64, 8, 5, 2), (3, 6, 32, 5, 0),
                            (6, 16, 14, 5, 0)):
        x = rng.standard_normal((batch, c, h, h)).astype(np.float32)
        w = (rng.standard_normal((k, c, r, r)) * 0.1).astype(np.float32)
        b = np.zeros(k, np.float32)
        y, idx = _core.conv2d_forward(x, w, b, (1, 1), (pad, pad), "auto", True)
        g = rng.standard_normal(y.shape).astype(np.float32)
        dw, db = np.zeros_like(w), np.zeros_like(b)
        tx, tw, tb, tg = (torch.from_numpy(a) for a in (x, w, b, g))
        ty = torch.nn.functional.conv2d(tx, tw, tb, padding=pad)
        tidx = torch.nn.functional.max_pool2d(ty, 2, return_indices=True)[1]
        cb = torch.ops.aten.convolution_backward

        def torch_grad(mask):
            gu = mp_backward(tg, ty, [2, 2], [2, 2], [0, 0], [1, 1], False, tidx)
            return cb(gu, tx, tw, [k], [1, 1], [pad, pad], [1, 1], False, [0, 0], 1, mask)

        def torch_infer():
            with torch.no_grad():
                return torch.nn.functional.max_pool2d(torch.nn.functional.conv2d(tx, tw, tb, padding=pad), 2)

        ops = [
            ("fwd", lambda: _core.conv2d_forward(x, w, b, (1, 1), (pad, pad), "auto", True, idx),
             lambda: torch.nn.functional.max_pool2d(torch.nn.functional.conv2d(tx, tw, tb, padding=pad), 2,
                                                    return_indices=True)),
            ("infer", lambda: _core.conv2d_forward(x, w, b, (1, 1), (pad, pad), "auto", True, None, False), torch_infer),
            ("dX", lambda: _core.conv2d_backward_input(g, w, x.shape, (1, 1), (pad, pad), "auto", idx),
             lambda: torch_grad([True, False, False])),
            ("dW", lambda: _core.conv2d_backward_weight(x, g, dw, db, (1, 1), (pad, pad), "auto", idx),
             lambda: torch_grad([False, True, True])),
        ]
        for name, fl, ft in ops:
            tl, tt = interleaved([fl, ft], steps)
            label = f"{r}x{r} {c}->{k} {h}x{h}" + ("" if pad == r // 2 else f" pad {pad}")
            print(f"{label:<22}{name:<6}{tl * 1e3:>10.2f}{tt * 1e3:>10.2f}{tt / tl:>8.2f}x")
    print(f"\n{'2x2 max pool':<22}{'op':<6}{'lossk ms':>10}{'torch ms':>10}{'speedup':>9}")
    for c, h in ((32, 32), (32, 16), (64, 8)):
        x = rng.standard_normal((batch, c, h, h)).astype(np.float32)
        y, idx = _core.max_pool2d_forward(x, (2, 2), (2, 2))
        g = rng.standard_normal(y.shape).astype(np.float32)
        tx, tg, tidx = torch.from_numpy(x), torch.from_numpy(g), torch.from_numpy(idx)
        ops = [
            ("fwd", lambda: _core.max_pool2d_forward(x, (2, 2), (2, 2), idx),
             lambda: torch.nn.functional.max_pool2d(tx, 2, return_indices=True)),
            ("dX", lambda: _core.max_pool2d_backward(g, idx, x.shape, (2, 2), (2, 2), np.float32),
             lambda: torch.ops.aten.max_pool2d_with_indices_backward(tg, tx, [2, 2], [2, 2], [0, 0], [1, 1], False,
                                                                     tidx)),
        ]
        for name, fl, ft in ops:
            tl, tt = interleaved([fl, ft], steps)
            print(f"{f'{c} planes {h}x{h}':<22}{name:<6}{tl * 1e3:>10.2f}{tt * 1e3:>10.2f}{tt / tl:>8.2f}x")
    print(f"\n{'linear layer':<22}{'op':<6}{'lossk ms':>10}{'torch ms':>10}{'speedup':>9}")
    for n_in, n_out in ((1024, 64), (64, 10), (400, 120), (120, 84), (84, 10), (1024, 512)):
        x = rng.standard_normal((batch, n_in)).astype(np.float32)
        w = (rng.standard_normal((n_out, n_in)) * 0.1).astype(np.float32)
        b = np.zeros(n_out, np.float32)
        g = rng.standard_normal((batch, n_out)).astype(np.float32)
        dw, db = np.zeros_like(w), np.zeros_like(b)
        tx, tw, tb, tg = (torch.from_numpy(a) for a in (x, w, b, g))
        ops = [  # PyTorch's autograd computes the gradients so: dX = dY W, dW = dY^T X, db = sum of dY
            ("fwd", lambda: _core.linear_forward(x, w, b), lambda: torch.nn.functional.linear(tx, tw, tb)),
            ("dX", lambda: _core.linear_backward(g, x, w, None, None, True), lambda: torch.mm(tg, tw)),
            ("dW", lambda: _core.linear_backward(g, x, w, dw, db, False),
             lambda: (torch.mm(tg.t(), tx), tg.sum(0))),
        ]
        for name, fl, ft in ops:
            tl, tt = interleaved([fl, ft], steps)
            print(f"{f'{n_in}->{n_out}':<22}{name:<6}{tl * 1e3:>10.3f}{tt * 1e3:>10.3f}{tt / tl:>8.2f}x")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--data", default=os.path.join(os.path.dirname(__file__), "..", "..", "shared",
                                                   "cifar-10-batches-py"),
                    help="CIFAR-10 python batches (default: ../shared/cifar-10-batches-py from the project root)")
    ap.add_argument("--layers", action="store_true", help="also time each convolution's, pooling's and linear layer's kernels")
    ap.add_argument("--net", choices=sorted(NETS), default="cifar10",
                    help="lossk's CIFAR-10 network (default) or PyTorch's tutorial network (conv, ReLU, pool)")
    args = ap.parse_args()

    import torch
    torch.set_num_threads(args.threads)
    lossk.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    x, y, source = load_images(args.data, args.batch * 4, rng)
    batches = [(x[i:i + args.batch], y[i:i + args.batch]) for i in range(0, len(x) - args.batch + 1, args.batch)]

    nn.manual_seed(0)
    net = build(NETS[args.net], nn)
    tnet = build(NETS[args.net], torch.nn)
    tnet.load_state_dict({k: torch.from_numpy(v) for k, v in net.state_dict().items()})
    crit, opt = nn.CrossEntropyLoss(), optim.SGD(net.parameters(), lr=0.01)
    tcrit, topt = torch.nn.CrossEntropyLoss(), torch.optim.SGD(tnet.parameters(), lr=0.01)
    tbatches = [(torch.from_numpy(a), torch.from_numpy(b)) for a, b in batches]
    state = {"i": 0, "j": 0}

    def lossk_step():
        xb, yb = batches[state["i"] % len(batches)]
        state["i"] += 1
        opt.zero_grad()
        crit(net(xb), yb)
        net.backward(crit.backward(), input_grad=False)
        opt.step()

    def torch_step():
        xb, yb = tbatches[state["j"] % len(tbatches)]
        state["j"] += 1
        topt.zero_grad()
        tcrit(tnet(xb), yb).backward()
        topt.step()

    def lossk_infer():
        with nn.no_grad():
            net(batches[0][0])

    def torch_infer():
        with torch.no_grad():
            tnet(tbatches[0][0])

    tl, tt = interleaved([lossk_step, torch_step], args.steps)
    il, it = interleaved([lossk_infer, torch_infer], args.steps)
    print(f"{args.net} network, batch {args.batch}, {args.threads} threads, {source}, ISA {lossk.isa()}, "
          f"torch {torch.__version__}; median of {args.steps} steps")
    for what, lossk_s, torch_s in [("training", tl, tt), ("inference", il, it)]:
        print(f"{what:9s} lossk  : {lossk_s * 1e3:7.2f} ms/batch {args.batch / lossk_s:8.0f} images/s")
        print(f"{what:9s} PyTorch: {torch_s * 1e3:7.2f} ms/batch {args.batch / torch_s:8.0f} images/s")
        print(f"{what:9s} ratio lossk/PyTorch images/s: {torch_s / lossk_s:.2f}x")
    if args.layers:
        bench_layers(torch, args.batch, max(5, args.steps // 2), rng)


if __name__ == "__main__":
    main()

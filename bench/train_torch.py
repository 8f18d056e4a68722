"""The same CIFAR-10 recipe in PyTorch, as the reference for lossk.cifar10's accuracy and speed.

    python bench/train_torch.py --data DIR [--epochs 20 --batch-size 64 --lr 0.01 --threads N --seed S]

The tutorial's network, CrossEntropyLoss, SGD, images scaled to [0, 1] (ToTensor only), the
training set reshuffled every epoch; prints one JSON line per epoch (test accuracy, images/s).
"""
import argparse
import json
import time

import numpy as np
import torch

from lossk.cifar10.data import find_data_dir, load_cifar10, normalize


def tutorial_net():
    t = torch.nn
    return t.Sequential(t.Conv2d(3, 32, 5, padding=2), t.MaxPool2d(2), t.Conv2d(32, 32, 5, padding=2), t.MaxPool2d(2),
                        t.Conv2d(32, 64, 5, padding=2), t.MaxPool2d(2), t.Flatten(), t.Linear(1024, 64),
                        t.Linear(64, 10))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    xtr, ytr, xte, yte = load_cifar10(find_data_dir(args.data))
    xtr, xte = torch.from_numpy(normalize(xtr)), torch.from_numpy(normalize(xte))
    ytr, yte = torch.from_numpy(ytr), torch.from_numpy(yte)
    model, loss_fn = tutorial_net(), torch.nn.CrossEntropyLoss()
    opt = torch.optim.SGD(model.parameters(), lr=args.lr)
    for epoch in range(1, args.epochs + 1):
        start = time.perf_counter()
        for idx in torch.randperm(len(xtr)).split(args.batch_size):
            opt.zero_grad()
            loss_fn(model(xtr[idx]), ytr[idx]).backward()
            opt.step()
        seconds = time.perf_counter() - start
        with torch.no_grad():
            correct = sum(int((model(xb).argmax(1) == yb).sum()) for xb, yb in zip(xte.split(1000), yte.split(1000)))
        print(json.dumps({"epoch": epoch, "test_accuracy": correct / len(xte),
                          "train_images_per_s": round(len(xtr) / seconds, 1), "seconds": round(seconds, 1),
                          "threads": torch.get_num_threads()}), flush=True)


if __name__ == "__main__":
    main()

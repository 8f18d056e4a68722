"""Tests for the CIFAR-10 training program (lossk.cifar10), on tiny synthetic datasets.

Every run trains on 20 images in batches of 8 (steps of 8, 8 and 4 images: three steps an epoch,
the last one partial) and tests on 8, to stay fast: what is tested is the bookkeeping around the
training, not the kernels.
"""
import io
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lossk import nn, optim
from lossk.cifar10 import data as cifar10_data
from lossk.cifar10 import train as cifar10
from lossk import functional as F

PER_FILE = 48  # images per synthetic batch file: the limits below pick a few of them
STEPS_PER_EPOCH = 3
COMMON = ["--batch-size", "8", "--limit-train", "20", "--limit-test", "8", "--seed", "7",
          "--momentum", "0.9", "--weight-decay", "0.001"]
METRIC_FIELDS = {"epoch", "train_loss", "test_loss", "test_accuracy", "train_images_per_s",
                 "train_seconds", "epoch_seconds", "elapsed_seconds", "wall_time", "lr"}


def write_dataset(parent, per_file=PER_FILE, seed=0):
    """A CIFAR-10 "python version" folder of random images in ``parent``; returns ``parent``."""
    rng = np.random.default_rng(seed)
    folder = Path(parent) / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {
            b"data": rng.integers(0, 256, size=(per_file, 3 * 32 * 32), dtype=np.uint8),
            b"labels": [int(v) for v in rng.integers(0, 10, size=per_file)],
        }
        (folder / name).write_bytes(pickle.dumps(batch, protocol=3))
    return Path(parent)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("cifar10"))


@pytest.fixture(autouse=True)
def no_ambient_data(monkeypatch, tmp_path):
    """Runs must only find the data they are given, never a copy in the real environment."""
    monkeypatch.delenv(cifar10_data.ENV_VAR, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def train(data, out, *args):
    return cifar10.main(["--data", str(data), "--out", str(out), *COMMON, *args])


def checkpoint(run_dir):
    return cifar10.load_checkpoint(Path(run_dir) / cifar10.CHECKPOINT_NAME)


def read_metrics(run_dir):
    lines = (Path(run_dir) / cifar10.METRICS_NAME).read_text().splitlines()
    return [json.loads(line) for line in lines]


def assert_same_training(run_a, run_b):
    """Same weights, momentum buffers, shuffling state and results, bit for bit."""
    meta_a, model_a, optim_a = checkpoint(run_a)
    meta_b, model_b, optim_b = checkpoint(run_b)
    for a, b in ((model_a, model_b), (optim_a, optim_b)):
        assert a.keys() == b.keys()
        for name in a:
            np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    pos_a, pos_b = meta_a["position"], meta_b["position"]
    for key in ("epoch", "step", "loss_sum", "shuffle_state"):
        assert pos_a[key] == pos_b[key], key
    results = ("epoch", "train_loss", "test_loss", "test_accuracy")
    assert [[m[k] for k in results] for m in read_metrics(run_a)] == \
           [[m[k] for k in results] for m in read_metrics(run_b)]
    assert read_metrics(run_a) == pos_a["metrics"] and read_metrics(run_b) == pos_b["metrics"]


def call_counter(monkeypatch, on_call, action):
    """Wrap train_step so that ``action(real_step, *args)`` replaces its ``on_call``-th call."""
    real = cifar10.train_step
    calls = []

    def counting(*args):
        calls.append(None)
        if len(calls) == on_call:
            return action(real, *args)
        return real(*args)

    monkeypatch.setattr(cifar10, "train_step", counting)
    return calls


@pytest.fixture(scope="module")
def reference_run(data, tmp_path_factory):
    """An uninterrupted two-epoch run, for the resumed ones to be compared with."""
    out = tmp_path_factory.mktemp("reference")
    assert train(data, out, "--epochs", "2") == 0
    return out


@pytest.fixture(scope="module")
def one_epoch_run(data, tmp_path_factory):
    """A run of one epoch with the reference run's settings; copy it (after_one_epoch) to change it."""
    out = tmp_path_factory.mktemp("one-epoch")
    assert train(data, out, "--epochs", "1") == 0
    return out


@pytest.fixture
def after_one_epoch(one_epoch_run, tmp_path):
    """A private copy of one_epoch_run."""
    out = tmp_path / "run"
    shutil.copytree(one_epoch_run, out)
    return out


# --------------------------------------------------------------------------- the network and step


def test_build_model_is_the_tutorial_network_and_seedable():
    model = cifar10.build_model(seed=3)
    shapes = {name: value.shape for name, value in model.state_dict().items()}
    assert shapes == {
        "0.weight": (32, 3, 5, 5), "0.bias": (32,),
        "2.weight": (32, 32, 5, 5), "2.bias": (32,),
        "4.weight": (64, 32, 5, 5), "4.bias": (64,),
        "7.weight": (64, 1024), "7.bias": (64,),
        "8.weight": (10, 64), "8.bias": (10,),
    }
    same, other = cifar10.build_model(seed=3).state_dict(), cifar10.build_model(seed=4).state_dict()
    for name, value in model.state_dict().items():
        assert value.dtype == np.float32
        np.testing.assert_array_equal(value, same[name])
        assert not np.array_equal(value, other[name])


def test_train_step_returns_the_loss_and_updates_every_parameter(rng):
    model = cifar10.build_model(seed=0)
    x = rng.random((8, 3, 32, 32), dtype=np.float32)
    y = rng.integers(0, 10, size=8)
    before = model.state_dict()
    with nn.no_grad():
        expected = float(F.cross_entropy(model(x), y))
    loss = cifar10.train_step(model, nn.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.01), x, y)
    assert isinstance(loss, float)
    assert loss == pytest.approx(expected, rel=1e-6)
    for name, value in model.state_dict().items():
        assert not np.array_equal(value, before[name]), name


def test_evaluate_matches_functional_cross_entropy(rng):
    model = cifar10.build_model(seed=0)
    x = rng.random((30, 3, 32, 32), dtype=np.float32)
    y = rng.integers(0, 10, size=30)
    loss, accuracy = cifar10.evaluate(model, x, y, batch_size=7)  # uneven batches on purpose
    with nn.no_grad():
        out = model(x)
    assert loss == pytest.approx(float(F.cross_entropy(out, y)), rel=1e-5)
    assert accuracy == np.mean(out.argmax(axis=1) == y)


# --------------------------------------------------------------------------- a run and its files


def test_run_writes_metrics_checkpoints_and_summary(data, tmp_path, monkeypatch, capsys):
    saved = []
    real_save = cifar10.save_checkpoint

    def save_and_record(path, *args):
        real_save(path, *args)
        position = cifar10.load_checkpoint(path)[0]["position"]
        saved.append((position["epoch"], position["step"]))

    monkeypatch.setattr(cifar10, "save_checkpoint", save_and_record)
    assert train(data, tmp_path, "--epochs", "2") == 0
    assert saved == [(0, 0), (1, 0), (2, 0)]  # the initial weights, then after every epoch

    metrics = read_metrics(tmp_path)
    assert [m["epoch"] for m in metrics] == [1, 2]
    for m in metrics:
        assert set(m) == METRIC_FIELDS
        assert m["lr"] == 0.01
        assert 0 <= m["test_accuracy"] <= 1 and m["train_loss"] > 0 and m["test_loss"] > 0
        assert m["train_images_per_s"] > 0 and 0 < m["train_seconds"] <= m["epoch_seconds"]
    assert metrics[1]["elapsed_seconds"] >= metrics[0]["elapsed_seconds"] + metrics[1]["epoch_seconds"] - 1e-9
    assert metrics[0]["wall_time"] <= metrics[1]["wall_time"]

    umask = os.umask(0)
    os.umask(umask)
    for name in (cifar10.CHECKPOINT_NAME, cifar10.METRICS_NAME):  # as readable as any other new file
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o666 & ~umask

    meta, model_state, optimizer_state = checkpoint(tmp_path)
    assert meta["config"] == {"epochs": 2, "batch_size": 8, "lr": 0.01, "momentum": 0.9,
                              "weight_decay": 0.001, "seed": 7, "limit_train": 20, "limit_test": 8}
    assert meta["data"] == {"train_images": 20, "test_images": 8}
    assert meta["position"]["metrics"] == metrics
    assert model_state.keys() == cifar10.build_model().state_dict().keys()
    assert optimizer_state  # momentum 0.9: there are buffers to keep

    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert lines[0].startswith("epoch 1/2") and "test accuracy" in lines[0]
    assert lines[1].startswith("epoch 2/2")
    assert lines[2].startswith("done: 2 epochs, final test accuracy")
    assert "img/s" in lines[2]
    assert "20 training and 8 test images" in err
    # Not a terminal: plain lines, one per tenth of an epoch at most, ending at the full count.
    progress = [line for line in err.splitlines() if line.startswith("epoch ")]
    assert "\r" not in err
    assert progress[-1].startswith("epoch 2/2 [####") and " 20/20 " in progress[-1]


def test_defaults_are_the_tutorials_and_a_new_run_gets_a_recorded_seed():
    config = cifar10._config_for_new_run(cifar10._parser().parse_args([]))
    assert (config.epochs, config.batch_size, config.lr, config.momentum, config.weight_decay) == (20, 64, 0.01, 0, 0)
    assert (config.limit_train, config.limit_test) == (None, None)
    assert isinstance(config.seed, int)  # drawn, then stored in the checkpoint so --resume needs no --seed


def test_checkpoint_loads_without_pickle(one_epoch_run):
    with np.load(one_epoch_run / cifar10.CHECKPOINT_NAME, allow_pickle=False) as npz:
        for name in npz.files:
            assert npz[name].dtype != object, name
        assert json.loads(str(npz["meta"]))["position"]["epoch"] == 1


def test_new_run_refuses_to_overwrite_a_run(data, after_one_epoch, capsys):
    before = (after_one_epoch / cifar10.CHECKPOINT_NAME).read_bytes()
    capsys.readouterr()
    assert train(data, after_one_epoch, "--epochs", "1") == 2
    assert "already holds a run" in capsys.readouterr().err
    assert (after_one_epoch / cifar10.CHECKPOINT_NAME).read_bytes() == before


def test_threads_option_sets_lossk_threads(data, after_one_epoch, monkeypatch):
    requested = []
    monkeypatch.setattr(cifar10, "set_num_threads", requested.append)
    assert train(data, after_one_epoch, "--resume", "--threads", "1") == 0
    assert requested == [1]


def test_plot_without_matplotlib_says_so(data, after_one_epoch, monkeypatch, capsys):
    monkeypatch.setattr(cifar10, "_importable", lambda module: module != "matplotlib")
    assert train(data, after_one_epoch, "--resume", "--plot") == 0
    assert "matplotlib is not installed" in capsys.readouterr().err
    assert not (after_one_epoch / cifar10.PLOT_NAME).exists()


def test_plot_writes_a_png(data, tmp_path):
    pytest.importorskip("matplotlib")
    assert train(data, tmp_path, "--epochs", "2", "--plot") == 0
    assert (tmp_path / cifar10.PLOT_NAME).read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


# --------------------------------------------------------------------------- resuming


def test_resume_continues_exactly(data, after_one_epoch, reference_run, capsys):
    assert checkpoint(after_one_epoch)[0]["position"]["epoch"] == 1
    capsys.readouterr()
    # No settings repeated: the checkpoint's apply, only the target epoch count is new.
    assert cifar10.main(["--data", str(data), "--out", str(after_one_epoch), "--resume", "--epochs", "2"]) == 0
    out, err = capsys.readouterr()
    assert "resuming" in err and "end of epoch 1" in err
    assert out.splitlines()[0].startswith("epoch 2/2")
    assert_same_training(after_one_epoch, reference_run)


def test_resume_of_a_finished_run_trains_nothing_more(data, after_one_epoch, capsys):
    before = (after_one_epoch / cifar10.CHECKPOINT_NAME).read_bytes()
    capsys.readouterr()
    assert train(data, after_one_epoch, "--resume") == 0
    assert capsys.readouterr().out.startswith("done: 1 epoch, final")
    assert (after_one_epoch / cifar10.CHECKPOINT_NAME).read_bytes() == before


@pytest.mark.parametrize("option, value, shown", [
    ("--lr", "0.1", "--lr 0.1 (checkpoint: 0.01)"),
    ("--batch-size", "16", "--batch-size 16 (checkpoint: 8)"),
    ("--momentum", "0", "--momentum 0.0 (checkpoint: 0.9)"),
    ("--seed", "8", "--seed 8 (checkpoint: 7)"),
    ("--limit-train", "16", "--limit-train 16 (checkpoint: 20)"),
])
def test_resume_refuses_other_settings(data, after_one_epoch, capsys, option, value, shown):
    before = (after_one_epoch / cifar10.CHECKPOINT_NAME).read_bytes()
    capsys.readouterr()
    argv = ["--data", str(data), "--out", str(after_one_epoch), "--resume", "--epochs", "2", option, value]
    assert cifar10.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: cannot resume") and shown in err and "--out" in err
    assert (after_one_epoch / cifar10.CHECKPOINT_NAME).read_bytes() == before


def test_resume_refuses_another_architecture(data, after_one_epoch, monkeypatch, capsys):
    capsys.readouterr()
    monkeypatch.setattr(cifar10, "build_model", lambda seed=None: nn.Sequential(
        nn.Flatten(), nn.Linear(3 * 32 * 32, 10)))
    assert train(data, after_one_epoch, "--epochs", "2", "--resume") == 2
    err = capsys.readouterr().err
    assert "cannot resume" in err and "this program's network" in err


def test_resume_refuses_other_data(after_one_epoch, tmp_path, capsys):
    smaller = write_dataset(tmp_path / "smaller", per_file=4)  # 20 training images, as many as used
    assert train(smaller, after_one_epoch, "--resume", "--epochs", "2") == 2
    assert "trained on 20 training and 8 test images, this data has 20 and 4" in capsys.readouterr().err


def test_resume_without_a_checkpoint_is_an_error(data, tmp_path, capsys):
    assert train(data, tmp_path / "empty", "--resume") == 2
    assert "error: there is no checkpoint at" in capsys.readouterr().err


def test_resume_rejects_a_file_that_is_not_a_checkpoint(data, tmp_path, capsys):
    (tmp_path / cifar10.CHECKPOINT_NAME).write_bytes(b"not a zip file")
    assert train(data, tmp_path, "--resume") == 2
    assert "error: cannot read checkpoint" in capsys.readouterr().err


def test_resume_drops_metrics_newer_than_the_checkpoint(data, after_one_epoch, reference_run):
    with open(after_one_epoch / cifar10.METRICS_NAME, "a") as f:  # as if the checkpoint write had failed
        f.write('{"epoch": 2, "stale": true}\n')
    assert train(data, after_one_epoch, "--resume", "--epochs", "2") == 0
    assert_same_training(after_one_epoch, reference_run)


# --------------------------------------------------------------------------- failures and Ctrl-C


_real_replace = os.replace


def _fail_replacing_checkpoint(src, dst):
    if Path(dst).name == cifar10.CHECKPOINT_NAME:
        raise OSError(28, "No space left on device")
    _real_replace(src, dst)


def _fail_mid_write(file, **arrays):
    file.write(b"PK\x03\x04 half a zip")
    raise OSError(28, "No space left on device")


@pytest.mark.parametrize("failure", ["replace", "write"])
def test_failed_checkpoint_write_keeps_the_previous_one(data, after_one_epoch, monkeypatch, capsys, failure,
                                                        reference_run):
    run = after_one_epoch
    before = (run / cifar10.CHECKPOINT_NAME).read_bytes()
    capsys.readouterr()
    with monkeypatch.context() as patch:
        if failure == "replace":
            patch.setattr(os, "replace", _fail_replacing_checkpoint)
        else:
            patch.setattr(np, "savez", _fail_mid_write)
        assert train(data, run, "--resume", "--epochs", "2") == 1
    assert "error: [Errno 28] No space left on device" in capsys.readouterr().err
    assert (run / cifar10.CHECKPOINT_NAME).read_bytes() == before
    assert sorted(p.name for p in run.iterdir()) == [cifar10.CHECKPOINT_NAME, cifar10.METRICS_NAME]
    assert checkpoint(run)[0]["position"]["epoch"] == 1
    # ...and the run carries on from it as if nothing had happened.
    assert train(data, run, "--resume", "--epochs", "2") == 0
    assert_same_training(run, reference_run)


@pytest.mark.parametrize("on_call, kept", [(3, "the initial weights"), (5, "the end of epoch 1")])
def test_keyboard_interrupt_inside_a_step_keeps_the_last_checkpoint(data, tmp_path, monkeypatch, capsys,
                                                                    reference_run, on_call, kept):
    def interrupt(real, *args):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        call_counter(patch, on_call, interrupt)
        assert train(data, tmp_path, "--epochs", "2") == 130
    err = capsys.readouterr().err
    assert f"keeps {kept}" in err and "--resume" in err and "Traceback" not in err
    position = checkpoint(tmp_path)[0]["position"]
    assert (position["epoch"], position["step"]) == ((on_call - 1) // STEPS_PER_EPOCH, 0)
    assert train(data, tmp_path, "--resume") == 0
    assert_same_training(tmp_path, reference_run)


@pytest.mark.parametrize("on_call", [2, 3, 4])  # mid-epoch, on an epoch's last step, on the next's first
def test_ctrl_c_saves_after_the_step_and_resume_is_exact(data, tmp_path, monkeypatch, capsys,
                                                         reference_run, on_call):
    def step_then_ctrl_c(real, *args):
        loss = real(*args)
        signal.raise_signal(signal.SIGINT)
        return loss

    handler = signal.getsignal(signal.SIGINT)
    with monkeypatch.context() as patch:
        calls = call_counter(patch, on_call, step_then_ctrl_c)
        assert train(data, tmp_path, "--epochs", "2") == 130
    assert len(calls) == on_call  # stopped right after that step
    assert signal.getsignal(signal.SIGINT) is handler  # the run's own handler is gone
    err = capsys.readouterr().err
    assert "Stopped by Ctrl-C; saved epoch" in err and "Traceback" not in err
    position = checkpoint(tmp_path)[0]["position"]
    assert position["epoch"] * STEPS_PER_EPOCH + position["step"] == on_call
    assert train(data, tmp_path, "--resume") == 0
    assert_same_training(tmp_path, reference_run)


# --------------------------------------------------------------------------- finding the data


def test_missing_data_exits_2_with_the_loader_message(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != cifar10_data.ENV_VAR}
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")
    proc = subprocess.run(
        [sys.executable, "-m", "lossk.cifar10", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "run")],
        capture_output=True, text=True, env=env, timeout=120, cwd=tmp_path,  # not the source tree
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"error: CIFAR-10 not found at {tmp_path / 'nowhere'}")
    assert "--download" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("source", ["env", "cache"])
def test_data_found_via_environment_or_cache(data, after_one_epoch, tmp_path, monkeypatch, source):
    if source == "env":
        monkeypatch.setenv(cifar10_data.ENV_VAR, str(data))
    else:
        (tmp_path / "xdg" / "lossk").mkdir(parents=True)
        (tmp_path / "xdg" / "lossk" / "cifar10").symlink_to(data, target_is_directory=True)
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    # Resuming the finished run loads (and checks) the data but trains nothing.
    assert cifar10.main(["--out", str(after_one_epoch), "--resume"]) == 0


def test_download_only_when_asked(after_one_epoch, tmp_path, monkeypatch, capsys):
    fetched = []

    def fake_download(dest):
        fetched.append(Path(dest))
        return write_dataset(dest) / "cifar-10-batches-py"

    monkeypatch.setattr(cifar10_data, "download_cifar10", fake_download)
    target = tmp_path / "fresh"
    assert train(target, after_one_epoch, "--resume") == 2
    assert fetched == [] and "CIFAR-10 not found" in capsys.readouterr().err
    assert train(target, after_one_epoch, "--resume", "--download") == 0
    assert fetched == [target]


# --------------------------------------------------------------------------- progress bar


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_bar_on_a_log_prints_at_most_a_line_per_tenth():
    log = io.StringIO()
    bar = cifar10._ProgressBar("epoch 1/1", 1000, log)
    for done in range(7, 1001, 7):
        bar.update(done, 123.0, 2.5)
    bar.update(1000, 123.0, 2.5)
    bar.close()
    lines = log.getvalue().splitlines()
    assert 10 <= len(lines) <= 11 and "\r" not in log.getvalue()
    assert lines[-1].startswith("epoch 1/1 [" + "#" * 24 + "] 1000/1000")
    assert "123 img/s" in lines[-1] and "loss 2.5000" in lines[-1]


def test_progress_bar_on_a_terminal_redraws_in_place():
    term = _Terminal()
    bar = cifar10._ProgressBar("epoch 1/1", 100, term)
    for done in range(1, 101):
        bar.update(done, 50.0, 1.0)
    bar.close()
    text = term.getvalue()
    assert text.startswith("\r") and text.endswith(" 100/100     50 img/s  loss 1.0000  eta 0:00\n")
    assert "\n" not in text[:-1]

"""Tests for the trainer's TensorBoard log and the predict and evaluate commands (lossk.cifar10), on
the tiny synthetic datasets of test_cifar10_train.py. TensorBoard's own event reader reads the logs
back; Pillow writes the image files."""
import json
import signal

import numpy as np
import pytest

from lossk import nn
from lossk.cifar10 import cli, data as cifar10_data, predict
from lossk.cifar10 import train as cifar10
from test_cifar10_train import STEPS_PER_EPOCH, call_counter, checkpoint, data, no_ambient_data, train  # noqa: F401 (fixtures)

Image = pytest.importorskip("PIL.Image")


@pytest.fixture(scope="module")
def trained(data, tmp_path_factory):
    """A run of two epochs that logged to TensorBoard at every step."""
    out = tmp_path_factory.mktemp("trained")
    assert train(data, out, "--epochs", "2", "--tensorboard", "--log-every", "1") == 0
    return out


# --------------------------------------------------------------------------- TensorBoard


def events(log_dir):
    """{tag: [(step, value)]} of the scalars and {tag: [step]} of the histograms, read by TensorBoard."""
    accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    acc = accumulator.EventAccumulator(str(log_dir), size_guidance={"scalars": 0, "histograms": 0})
    acc.Reload()
    tags = acc.Tags()
    scalars = {t: [(e.step, e.value) for e in acc.Scalars(t)] for t in tags["scalars"]}
    histograms = {t: [e.step for e in acc.Histograms(t)] for t in tags["histograms"]}
    return scalars, histograms


def test_tensorboard_holds_every_tag_at_its_steps(trained):
    scalars, histograms = events(trained / cifar10.TENSORBOARD_NAME)
    epoch_ends = [STEPS_PER_EPOCH, 2 * STEPS_PER_EPOCH]
    assert [step for step, _ in scalars["train/loss"]] == list(range(1, 2 * STEPS_PER_EPOCH + 1))
    metrics = [json.loads(line) for line in (trained / cifar10.METRICS_NAME).read_text().splitlines()]
    for tag, key in [("test/loss", "test_loss"), ("test/accuracy", "test_accuracy"),
                     ("train/epoch_loss", "train_loss"), ("train/images_per_s", "train_images_per_s"),
                     ("train/lr", "lr")]:
        assert [step for step, _ in scalars[tag]] == epoch_ends, tag
        np.testing.assert_allclose([v for _, v in scalars[tag]], [m[key] for m in metrics], rtol=1e-6)
    names = [name for name, _ in cifar10.build_model(0).named_parameters()]
    assert sorted(histograms) == sorted([f"weights/{n}" for n in names] + [f"gradients/{n}" for n in names])
    assert all(steps == epoch_ends for steps in histograms.values())


def test_tensorboard_train_loss_is_the_mean_since_the_last_point(data, trained, tmp_path):
    assert train(data, tmp_path, "--epochs", "2", "--tensorboard", str(tmp_path / "logs"), "--log-every", "2") == 0
    every_step = dict(events(trained / cifar10.TENSORBOARD_NAME)[0]["train/loss"])
    pairs = events(tmp_path / "logs")[0]["train/loss"]
    assert [step for step, _ in pairs] == [2, 4, 6]
    for step, value in pairs:
        assert value == pytest.approx((every_step[step - 1] + every_step[step]) / 2, rel=1e-6)


def assert_same_events(run_dir, reference):
    scalars, histograms = events(run_dir / cifar10.TENSORBOARD_NAME)
    ref_scalars, ref_histograms = events(reference / cifar10.TENSORBOARD_NAME)
    assert histograms == ref_histograms
    assert scalars.keys() == ref_scalars.keys()
    for tag in scalars:
        steps = [s for s, _ in scalars[tag]]
        assert steps == [s for s, _ in ref_scalars[tag]], tag  # each step once: nothing doubled
        if tag != "train/images_per_s":
            assert [v for _, v in scalars[tag]] == [v for _, v in ref_scalars[tag]], tag


def test_tensorboard_continues_the_step_axis_after_ctrl_c_and_resume(data, trained, tmp_path, monkeypatch):
    def step_then_ctrl_c(real, *args):
        loss = real(*args)
        signal.raise_signal(signal.SIGINT)
        return loss

    with monkeypatch.context() as patch:
        call_counter(patch, 4, step_then_ctrl_c)  # the first step of epoch 2
        assert train(data, tmp_path, "--epochs", "2", "--tensorboard", "--log-every", "1") == 130
    assert train(data, tmp_path, "--resume", "--tensorboard", "--log-every", "1") == 0
    assert_same_events(tmp_path, trained)


def test_tensorboard_hides_what_was_logged_after_the_checkpoint(data, trained, tmp_path, monkeypatch):
    def step_then_crash(real, *args):
        real(*args)
        raise KeyboardInterrupt  # a second Ctrl-C: steps 4 and 5 were logged, not saved

    with monkeypatch.context() as patch:
        call_counter(patch, 6, step_then_crash)
        assert train(data, tmp_path, "--epochs", "2", "--tensorboard", "--log-every", "1") == 130
    assert checkpoint(tmp_path)[0]["position"]["epoch"] == 1
    assert train(data, tmp_path, "--resume", "--tensorboard", "--log-every", "1") == 0
    assert_same_events(tmp_path, trained)


def test_tensorboard_without_tensorboardx_is_an_error_before_training(data, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(cifar10, "_importable", lambda module: module != "tensorboardX")
    assert train(data, tmp_path, "--tensorboard") == 2
    assert "tensorboardX is not installed" in capsys.readouterr().err
    assert not (tmp_path / cifar10.CHECKPOINT_NAME).exists()


# --------------------------------------------------------------------------- predict


def sample_images(data, count=6):
    _, _, x_test, _ = cifar10_data.load_cifar10(data)
    return x_test[:count]


def model_of(run_dir):
    return cifar10.model_from_checkpoint(run_dir / cifar10.CHECKPOINT_NAME)[0]


def save_png(pixels, path):
    Image.fromarray(np.ascontiguousarray(pixels.transpose(1, 2, 0))).save(path)
    return str(path)


def test_predict_on_pngs_of_test_images_is_the_models_argmax(data, trained, tmp_path, capsys):
    images = sample_images(data)
    paths = [save_png(image, tmp_path / f"{i}.png") for i, image in enumerate(images)]
    with nn.no_grad():
        logits = model_of(trained)(cifar10_data.normalize(images)).astype(np.float64)
    expected = np.exp(logits - logits.max(axis=1, keepdims=True))
    expected /= expected.sum(axis=1, keepdims=True)
    assert cli.main(["predict", "--checkpoint", str(trained / cifar10.CHECKPOINT_NAME), "--json", *paths]) == 0
    results = json.loads(capsys.readouterr().out)
    assert [r["file"] for r in results] == paths
    for result, p in zip(results, expected):
        top = result["top"]
        assert len(top) == 3 and top[0]["index"] == p.argmax()
        assert [t["class"] for t in top] == [cifar10_data.CLASSES[t["index"]] for t in top]
        np.testing.assert_allclose([t["probability"] for t in top], np.sort(p)[::-1][:3], rtol=1e-12)


def test_predict_text_output_and_top(data, trained, tmp_path, capsys):
    path = save_png(sample_images(data, 1)[0], tmp_path / "cat.png")
    assert cli.main(["predict", "--checkpoint", str(trained / cifar10.CHECKPOINT_NAME), "--top", "5", path]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"{path}: ") and line.count(",") == 4


def test_softmax_rows_sum_to_one(rng):
    logits = rng.normal(0, 20, (50, 10)).astype(np.float32)
    p = predict.softmax(logits)
    np.testing.assert_allclose(p.sum(axis=1), 1, rtol=1e-12)
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True).astype(np.float64))
    np.testing.assert_allclose(p, shifted / shifted.sum(axis=1, keepdims=True), rtol=1e-10, atol=1e-300)


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "LA"])
def test_predict_reads_other_sizes_and_modes(data, trained, tmp_path, mode):
    image = Image.fromarray(np.ascontiguousarray(sample_images(data, 1)[0].transpose(1, 2, 0)))
    big = image.resize((97, 64)).convert(mode)
    big.save(tmp_path / "big.png")
    pixels = predict.read_image(tmp_path / "big.png")
    assert pixels.shape == (3, 32, 32) and pixels.dtype == np.uint8
    if mode == "L":
        assert (pixels[0] == pixels[1]).all() and (pixels[1] == pixels[2]).all()


def test_transparent_pixels_are_laid_on_white(tmp_path):
    Image.new("RGBA", (32, 32), (10, 20, 30, 0)).save(tmp_path / "clear.png")
    assert (predict.read_image(tmp_path / "clear.png") == 255).all()


def test_predict_names_each_bad_file_and_still_answers_the_others(data, trained, tmp_path, capsys):
    good = save_png(sample_images(data, 1)[0], tmp_path / "good.png")
    (tmp_path / "text.png").write_bytes(b"not an image at all")
    raw = (tmp_path / "good.png").read_bytes()
    (tmp_path / "truncated.png").write_bytes(raw[:len(raw) // 2])
    Image.fromarray(np.full((32, 32), 300, np.uint16)).save(tmp_path / "deep.png")
    Image.fromarray(np.zeros((32, 32), np.float32)).save(tmp_path / "float.tiff")
    bad = {"text.png": "cannot read the image", "truncated.png": "truncated", "deep.png": "mode 'I;16'",
           "float.tiff": "mode 'F'", "missing.png": "no such file"}
    paths = [good] + [str(tmp_path / name) for name in bad]
    ckpt = str(trained / cifar10.CHECKPOINT_NAME)
    assert cli.main(["predict", "--checkpoint", ckpt, *paths]) == 1
    out, err = capsys.readouterr()
    assert out.startswith(f"{good}: ") and out.count("\n") == 1
    for name, reason in bad.items():
        assert any(str(tmp_path / name) in line and reason in line for line in err.splitlines()), name
    assert cli.main(["predict", "--checkpoint", ckpt, "--json", *paths]) == 1
    results = json.loads(capsys.readouterr().out)
    assert "top" in results[0] and all("error" in r and "top" not in r for r in results[1:])


def test_predict_without_a_checkpoint_exits_2(tmp_path, capsys):
    assert cli.main(["predict", "--checkpoint", str(tmp_path / "none.npz"), str(tmp_path / "x.png")]) == 2
    assert "there is no checkpoint" in capsys.readouterr().err


# --------------------------------------------------------------------------- evaluate


def test_evaluate_confusion_matrix_matches_accuracy(data, trained, capsys):
    ckpt = str(trained / cifar10.CHECKPOINT_NAME)
    assert cli.main(["evaluate", "--checkpoint", ckpt, "--data", str(data), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    _, _, x_test, y_test = cifar10_data.load_cifar10(data)
    matrix = np.array(report["confusion_matrix"])
    assert matrix.shape == (10, 10) and matrix.sum() == len(y_test) == report["images"]
    loss, accuracy = cifar10.evaluate(model_of(trained), cifar10_data.normalize(x_test), y_test)
    assert np.trace(matrix) / matrix.sum() == report["accuracy"] == pytest.approx(accuracy, abs=0)
    assert report["loss"] == pytest.approx(loss, rel=1e-12)
    assert report["support"] == np.bincount(y_test, minlength=10).tolist() == matrix.sum(axis=1).tolist()
    for c in range(10):
        predicted = matrix[:, c].sum()
        assert report["precision"][c] == (matrix[c, c] / predicted if predicted else None)


def test_evaluate_text_and_heat_map(data, trained, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    png = tmp_path / "heat.png"
    ckpt = str(trained / cifar10.CHECKPOINT_NAME)
    assert cli.main(["evaluate", "--checkpoint", ckpt, "--data", str(data), "--limit-test", "40",
                     "--plot", str(png)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("test accuracy ") and "(rows: true class, columns: predicted class)" in out
    rows = out.split("columns: predicted class)\n")[1].splitlines()[1:]
    assert len(rows) == 10 and sum(int(v) for row in rows for v in row.split()[1:]) == 40
    raw = png.read_bytes()
    assert raw.startswith(b"\x89PNG\r\n\x1a\n") and len(raw) > 10_000
    with Image.open(png) as image:
        assert image.size[0] > 300 and len(np.unique(np.asarray(image.convert("L")))) > 10  # not blank


def test_evaluate_refuses_bad_arguments(data, trained, tmp_path, capsys):
    ckpt = str(trained / cifar10.CHECKPOINT_NAME)
    assert cli.main(["evaluate", "--checkpoint", ckpt, "--data", str(tmp_path / "nowhere")]) == 2
    assert "CIFAR-10 not found" in capsys.readouterr().err
    assert cli.main(["evaluate", "--checkpoint", ckpt, "--data", str(data), "--limit-test", "0"]) == 2
    (tmp_path / "junk.npz").write_bytes(b"junk")
    assert cli.main(["evaluate", "--checkpoint", str(tmp_path / "junk.npz"), "--data", str(data)]) == 2
    assert "cannot read checkpoint" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["predict", "evaluate", "train"])
def test_python_m_dispatches_each_command(command, tmp_path):
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "lossk.cifar10", command, "--help"], capture_output=True,
                          text=True, check=True, cwd=tmp_path)  # the installed lossk, not the source tree
    assert f"python -m lossk.cifar10{'' if command == 'train' else ' ' + command}" in done.stdout

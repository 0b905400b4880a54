"""A trained network to ship: kept weights, the standalone predict file, ONNX (real tiny trainings)."""
from __future__ import annotations

import ast
import importlib.util
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from alife_nas import model_export as mx
from alife_nas.genome import parse_genome
from alife_nas.model import build_model
from alife_nas.retraining import retrain
from alife_nas.settings import make_settings
from alife_nas.training import Trainer

GENOME = "8-M"

# Runs in a fresh interpreter (-I) where alife_nas cannot be imported: loads a standalone model
# file by path, predicts the images of a .npy file and prints what it found as JSON.
_DRIVER = textwrap.dedent(
    """
    import importlib.abc, importlib.util, json, sys
    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] == "alife_nas":
                raise ImportError("alife_nas is blocked in this test")
    sys.meta_path.insert(0, Block())  # first in line, so even an editable install's finder is bypassed
    import numpy as np
    model_path, images, labels = sys.argv[1:4]
    spec = importlib.util.spec_from_file_location("shipped", model_path)
    m = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(m)
    x, y = np.load(images), np.load(labels)
    names = m.predict(x)
    print(json.dumps({
        "accuracy": sum(n == m.CLASSES[int(t)] for n, t in zip(names, y)) / len(y),
        "metadata": m.METADATA,
        "first": names[:5],
        "alife_nas_loaded": any(k.split(".")[0] == "alife_nas" for k in sys.modules),
    }))
    """
)


def predict_in_fresh_interpreter(model_py: Path, images: np.ndarray, labels: np.ndarray, workdir: Path) -> dict:
    """Run a standalone model file's predict() in an isolated interpreter without alife_nas."""
    np.save(workdir / "images.npy", images)
    np.save(workdir / "labels.npy", labels)
    proc = subprocess.run([sys.executable, "-I", "-c", _DRIVER, str(model_py), "images.npy", "labels.npy"],
                          cwd=workdir, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def load_module(path: Path):
    spec = importlib.util.spec_from_file_location(f"m_{abs(hash(str(path)))}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def third_party_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    names |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    return names - set(sys.stdlib_module_names)


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny trainings, shared cores


@pytest.fixture(scope="module")
def trainer(digits):
    return Trainer(digits, make_settings("fast", max_epochs=2))


@pytest.fixture(scope="module")
def trained(trainer):
    return trainer.train(GENOME, seed=0, evaluate_test=True, keep_weights=True)


# --- the trainer keeps the right weights ------------------------------------------------------------
def test_kept_weights_are_the_best_epochs_and_change_nothing(trainer, trained):
    plain = trainer.train(GENOME, seed=0, evaluate_test=True)
    assert plain.weights is None and trained.weights is not None
    assert trained.to_dict() == {**plain.to_dict(), "train_time": trained.train_time,
                                 "images_per_sec": trained.images_per_sec}  # same training, same numbers
    assert "weights" not in trained.to_dict() and json.dumps(trained.to_dict())
    model = build_model(parse_genome(GENOME), trainer.data.input_shape, trainer.data.num_classes, 512, "kaiming")
    model.load_state_dict(trained.weights)
    assert all(v.device.type == "cpu" for v in trained.weights.values())
    # the weights whose test accuracy was reported, and the best validation epoch's
    assert trainer.evaluate(model, trainer.test_x, trainer.test_y) == trained.test_accuracy
    assert trainer.evaluate(model, trainer.val_x, trainer.val_y) == trained.val_accuracy
    only_weights = trainer.train(GENOME, seed=0, keep_weights=True)  # without the test measurement
    assert only_weights.test_accuracy is None
    assert all(torch.equal(only_weights.weights[k], v) for k, v in trained.weights.items())


def test_a_failed_training_keeps_no_weights(digits):
    capped = Trainer(digits, make_settings("fast", max_epochs=1, max_params=10))
    result = capped.train(GENOME, seed=0, keep_weights=True)
    assert result.failure and result.weights is None
    with pytest.raises(mx.ModelExportError, match="kept no weights"):
        mx.save_trained(Path("unused"), "model", result, digits, capped.settings)


# --- the standalone predict file ----------------------------------------------------------------
@pytest.mark.slow  # a training and a fresh interpreter: ~3.5 s
def test_saved_model_predicts_in_a_fresh_interpreter_without_alife_nas(tmp_path, digits, trainer, trained):
    written = mx.save_trained(tmp_path / "m", "model", trained, digits, trainer.settings,
                              metadata={"device": "cpu"})
    assert [p.name for p in written] == ["model.py", "model.pt"] == mx.saved_files("model")
    state = torch.load(tmp_path / "m" / "model.pt", weights_only=True)
    assert state.keys() == trained.weights.keys() and all(torch.equal(state[k], v) for k, v in trained.weights.items())
    assert third_party_imports(tmp_path / "m" / "model.py") == {"torch"}
    labels = digits.test_y.numpy()
    got = predict_in_fresh_interpreter(tmp_path / "m" / "model.py", digits.test_x.numpy(), labels, tmp_path)
    assert not got["alife_nas_loaded"]
    assert got["accuracy"] == trained.test_accuracy == got["metadata"]["test_accuracy"]  # the same number, exactly
    meta = got["metadata"]
    assert meta["genome"] == GENOME and meta["dataset"] == "digits" and meta["seed"] == 0 and meta["device"] == "cpu"
    assert meta["settings"]["preset"] == "fast" and meta["settings"]["max_epochs"] == 2
    assert meta["val_accuracy"] == trained.val_accuracy and meta["best_epoch"] == trained.best_epoch


def test_predict_takes_every_layout_and_normalises_like_the_trainer(tmp_path, digits, trainer, trained):
    mx.save_trained(tmp_path, "rank-1", trained, digits, trainer.settings)
    m = load_module(tmp_path / "rank_1.py")
    assert m.CLASSES == [str(i) for i in range(10)] and m.INPUT_SHAPE == (1, 8, 8) and m.WEIGHTS == "rank_1.pt"
    x = digits.test_x[:20]
    assert torch.equal(m.normalize(x), trainer.test_x[:20])  # the trainer's resident input, bit for bit
    names = m.predict(x)
    assert len(names) == 20 and set(names) <= set(m.CLASSES)
    assert m.predict(x.permute(0, 2, 3, 1).numpy()) == names  # N x H x W x C, numpy
    assert m.predict(x[:, 0]) == names  # N x H x W grey images
    assert m.predict(x.float()) == names  # float in 0..255
    assert m.predict(x[3]) == names[3:4]  # one image
    proba = m.predict_proba(x)
    assert proba.shape == (20, 10) and torch.allclose(proba.sum(1), torch.ones(20))
    assert [m.CLASSES[i] for i in proba.argmax(1).tolist()] == names
    explicit = m.load(tmp_path / "rank_1.pt")
    assert m.predict(x, explicit) == names and not explicit.training
    with pytest.raises(ValueError, match="expected images of shape"):
        m.predict(torch.zeros(2, 3, 8, 8, dtype=torch.uint8))


def test_untrained_and_trained_sources_share_the_architecture(tmp_path, digits, trainer, trained):
    from alife_nas.pytorch_source import pytorch_source

    mx.save_trained(tmp_path, "model", trained, digits, trainer.settings)
    (tmp_path / "plain.py").write_text(pytorch_source(GENOME, (1, 8, 8), 10, "plain", init="kaiming"))
    trained_src, plain_src = (tmp_path / "model.py").read_text(), (tmp_path / "plain.py").read_text()
    block = plain_src[plain_src.index("class Net"):plain_src.index("def build")]
    assert block in trained_src  # one generator writes the network for both
    assert "UNTRAINED" in plain_src and "def predict" not in plain_src and "TRAINED" in trained_src


# --- ONNX -----------------------------------------------------------------------------------------
def test_trained_onnx_matches_pytorch_and_normalises_inside(tmp_path, digits, trainer, trained):
    import onnx
    import onnxruntime as ort

    written = mx.save_trained(tmp_path, "model", trained, digits, trainer.settings, onnx=True)
    assert [p.name for p in written] == ["model.py", "model.pt", "model.onnx"] == mx.saved_files("model", onnx=True)
    m = load_module(tmp_path / "model.py")
    session = ort.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["images"] and [o.name for o in session.get_outputs()] == ["logits"]
    for n in (1, 37):  # the batch size is free
        x = digits.test_x[:n]
        out = session.run(None, {"images": x.numpy().astype(np.float32)})[0]
        np.testing.assert_allclose(out, m.logits(x).numpy(), atol=1e-4)
    props = {p.key: p.value for p in onnx.load(str(tmp_path / "model.onnx")).metadata_props}
    assert props["trained"] == "true" and json.loads(props["classes"]) == m.CLASSES
    assert json.loads(props["mean"]) == list(m.MEAN) and json.loads(props["scale"]) == list(m.SCALE)
    assert props["genome"] == GENOME and float(props["test_accuracy"]) == trained.test_accuracy


@pytest.mark.slow  # a training, a fresh interpreter and ONNX: ~5 s
def test_a_gap_batchnorm_network_ships_and_reloads(tmp_path, digits):
    """--head gap --batchnorm: the standalone file and ONNX give what the trainer measured."""
    import onnxruntime as ort

    settings = make_settings("fast", max_epochs=2, head="gap", batchnorm=True)
    result = Trainer(digits, settings).train("8-M-16", seed=1, evaluate_test=True, keep_weights=True)
    assert result.failure is None
    assert any(k.endswith("running_mean") for k in result.weights)  # the norms' statistics travel too
    mx.save_trained(tmp_path, "model", result, digits, settings, onnx=True)
    m = load_module(tmp_path / "model.py")
    assert (m.HEAD, m.BATCHNORM, m.METADATA["settings"]["head"]) == ("gap", True, "gap")
    got = predict_in_fresh_interpreter(tmp_path / "model.py", digits.test_x.numpy(), digits.test_y.numpy(), tmp_path)
    assert got["accuracy"] == result.test_accuracy
    session = ort.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
    x = digits.test_x[:37]
    np.testing.assert_allclose(session.run(None, {"images": x.numpy().astype(np.float32)})[0], m.logits(x).numpy(),
                               atol=1e-4)


def test_untrained_onnx_is_the_bare_network_seeded(tmp_path):
    import onnx
    import onnxruntime as ort

    torch.manual_seed(123)
    state = torch.get_rng_state()
    path = mx.write_onnx(tmp_path / "net.onnx", "8-M-16", (1, 8, 8), 10, init="kaiming")
    assert torch.equal(torch.get_rng_state(), state)  # the caller's RNG is untouched
    with torch.random.fork_rng():
        torch.manual_seed(0)
        net = build_model(parse_genome("8-M-16"), (1, 8, 8), 10, 512, "kaiming").eval()
    x = torch.randn(4, 1, 8, 8)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["normalized_images"]
    with torch.no_grad():
        np.testing.assert_allclose(session.run(None, {"normalized_images": x.numpy()})[0], net(x).numpy(), atol=1e-4)
    props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert props["trained"] == "false" and "random" in props["weights"]


def test_missing_onnx_packages_are_one_line(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "onnxscript", None)  # an import of it now fails
    with pytest.raises(mx.OnnxUnavailable) as info:
        mx.write_onnx(tmp_path / "x.onnx", GENOME, (1, 8, 8), 10)
    message = str(info.value)
    assert "onnxscript" in message and 'pip install "alife-nas[onnx]"' in message and "\n" not in message
    assert not (tmp_path / "x.onnx").exists()


def test_export_models_writes_trained_and_untrained_files(tmp_path, digits, trainer):
    rows = [{"rank": 1, "genome": GENOME, "fitness": 0.5}, {"rank": 2, "genome": "8-8", "fitness": 0.4}]
    done = [retrain(r["genome"], trainer, seeds=1, keep_weights=True) for r in rows]
    capped = Trainer(digits, make_settings("fast", max_epochs=1, max_params=10))
    failed = retrain("8-8", capped, seeds=1, keep_weights=True)
    written = mx.export_models(rows, "pytorch", tmp_path / "t", input_shape=(1, 8, 8), num_classes=10,
                               init="kaiming", retrainings=[done[0], failed], data=digits, settings=trainer.settings,
                               metadata={"run": "r"})
    assert [p.name for p in written] == ["rank_1.py", "rank_1.pt", "rank_2.py"]
    assert load_module(tmp_path / "t" / "rank_1.py").METADATA["rank"] == 1
    assert "re-training failed" in (tmp_path / "t" / "rank_2.py").read_text()
    untrained = mx.export_models(rows, "pytorch", tmp_path / "u", input_shape=(1, 8, 8), num_classes=10)
    assert [p.name for p in untrained] == ["rank_1.py", "rank_2.py"]
    onnx_files = mx.export_models(rows[:1], "onnx", tmp_path / "o", input_shape=(1, 8, 8), num_classes=10,
                                  retrainings=done[:1], data=digits, settings=trainer.settings)
    assert [p.name for p in onnx_files] == ["rank_1.onnx"] and onnx_files[0].stat().st_size > 1000
    with pytest.raises(ValueError, match="one retraining per row"):
        mx.export_models(rows, "onnx", tmp_path / "o", input_shape=(1, 8, 8), num_classes=10, retrainings=done[:1],
                         data=digits, settings=trainer.settings)

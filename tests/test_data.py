"""Data sets: digits, torchvision formats read from tiny files in the real on-disk layout, errors."""
import builtins
import os
import pickle
import pickletools
import struct
import subprocess
import sys

import numpy as np
import pytest
import torch

from alife_nas.data import DATASETS, DatasetError, expected_files, load_dataset


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    """Image folders decoded here are cached under the test's own directory, never in ~/.cache."""
    monkeypatch.setenv("ALIFE_NAS_CACHE", str(tmp_path / "cache"))


def check_splits(d, shape, classes, total_train=None):
    for x, y in ((d.train_x, d.train_y), (d.val_x, d.val_y), (d.test_x, d.test_y)):
        assert x.dtype == torch.uint8 and y.dtype == torch.int64
        assert x.ndim == 4 and tuple(x.shape[1:]) == shape and len(x) == len(y) > 0
        assert int(y.min()) >= 0 and int(y.max()) < classes
    assert d.input_shape == shape and d.num_classes == classes
    assert len(d.mean) == len(d.std) == shape[0]
    if total_train is not None:
        assert len(d.train_y) + len(d.val_y) == total_train


# --- digits ------------------------------------------------------------------------------------
def test_digits_splits_and_train_only_statistics():
    d = load_dataset("digits")
    check_splits(d, (1, 8, 8), 10)
    assert sum(d.sizes().values()) == 1797
    assert len(d.test_y) == round(0.2 * 1797)
    assert int(d.train_x.max()) == 255  # 0..16 scaled to 0..255
    assert d.mean[0] == pytest.approx(d.train_x.double().mean().item())
    assert d.std[0] == pytest.approx(d.train_x.double().std().item())
    assert "digits" in repr(d) and "train=" in repr(d)


def test_validation_size_and_seed():
    a = load_dataset("digits", val_size=100, split_seed=1)
    b = load_dataset("digits", val_size=100, split_seed=1)
    c = load_dataset("digits", val_size=0.25, split_seed=2)
    assert len(a.val_y) == 100 and torch.equal(a.val_x, b.val_x)
    assert len(c.val_y) == round(0.25 * (len(c.train_y) + len(c.val_y)))
    assert torch.equal(a.test_x, c.test_x)  # the test split never moves with split_seed
    assert not torch.equal(a.val_x[:50], load_dataset("digits", val_size=100, split_seed=2).val_x[:50])
    for bad in (0, -3, 1.5, 100000, True):
        with pytest.raises(DatasetError):
            load_dataset("digits", val_size=bad)


def test_unknown_name_lists_valid_names():
    with pytest.raises(DatasetError) as err:
        load_dataset("imagenet")
    msg = str(err.value)
    assert "\n" not in msg and all(name in msg for name in DATASETS) and "imagefolder:PATH" in msg
    assert isinstance(err.value, ValueError)


# --- CIFAR -------------------------------------------------------------------------------------
class Python2Pickler(pickle._Pickler):
    """Writes what Python 2's cPickle wrote for the official CIFAR files: protocol 2, every text a
    byte string (BINSTRING), numpy's array globals under ``numpy.core``."""

    dispatch = dict(pickle._Pickler.dispatch)

    def _binstring(self, obj, raw):
        n = len(raw)
        self.write((pickle.SHORT_BINSTRING + bytes([n]) if n < 256 else pickle.BINSTRING + struct.pack("<i", n)) + raw)
        self.memoize(obj)

    def save_bytes(self, obj):
        self._binstring(obj, obj)

    def save_str(self, obj):
        self._binstring(obj, obj.encode("latin1"))

    def save_global(self, obj, name=None):
        module = obj.__module__.replace("numpy._core", "numpy.core")
        self.write(pickle.GLOBAL + f"{module}\n{name or obj.__qualname__}\n".encode())
        self.memoize(obj)

    dispatch[bytes] = save_bytes
    dispatch[str] = save_str
    dispatch[type] = save_global


#: How the tiny CIFAR files are written: "python2" like the official files, or a pickle protocol.
PICKLE_FORMAT = "python2"


def _pickle(path, obj, fmt=None):
    fmt = fmt or PICKLE_FORMAT
    with open(path, "wb") as f:
        if fmt == "python2":
            Python2Pickler(f, protocol=2).dump(obj)
        else:
            pickle.dump(obj, f, protocol=fmt)


def write_cifar10(root, per_batch=4, test=6):
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    batches = []
    for i in range(1, 6):
        data = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, per_batch)]
        _pickle(folder / f"data_batch_{i}", {"batch_label": f"training batch {i} of 5", "labels": labels, "data": data, "filenames": []})
        batches.append((data, labels))
    data = rng.integers(0, 256, (test, 3072), dtype=np.uint8)
    _pickle(folder / "test_batch", {"labels": [int(v) for v in rng.integers(0, 10, test)], "data": data})
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    _pickle(folder / "batches.meta", {"label_names": names, "num_cases_per_batch": per_batch, "num_vis": 3072})
    return batches


def test_cifar10_tiny_files(tmp_path):
    batches = write_cifar10(tmp_path)
    d = load_dataset("cifar10", tmp_path, val_size=2, download=False)
    check_splits(d, (3, 32, 32), 10, total_train=20)
    assert len(d.test_y) == 6 and d.classes[0] == "airplane"
    # Same layout as torchvision: row = 1024 red, 1024 green, 1024 blue values, row-major 32x32.
    everything = torch.cat([d.train_x, d.val_x])
    labels = torch.cat([d.train_y, d.val_y]).tolist()
    first = torch.from_numpy(batches[0][0][0].reshape(3, 32, 32))
    match = [i for i in range(len(everything)) if torch.equal(everything[i], first)]
    assert match and labels[match[0]] == batches[0][1][0]
    assert everything[match[0], 1, 2, 3] == batches[0][0][0][1024 + 2 * 32 + 3]


def test_cifar10_bytes_keys_like_python2_pickles(tmp_path):
    write_cifar10(tmp_path)
    folder = tmp_path / "cifar-10-batches-py"
    with open(folder / "test_batch", "rb") as f:
        entry = pickle.load(f, encoding="bytes")  # how Python 3 sees a Python 2 str: bytes
    assert all(isinstance(k, bytes) for k in entry)
    _pickle(folder / "test_batch", entry, fmt=4)  # re-pickled by Python 3 with those bytes keys
    assert len(load_dataset("cifar10", tmp_path).test_y) == 6


def test_cifar100_tiny_files(tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    rng = np.random.default_rng(1)
    for name, n in (("train", 12), ("test", 5)):
        _pickle(folder / name, {"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                                "fine_labels": [int(v) for v in rng.integers(0, 100, n)],
                                "coarse_labels": [int(v) for v in rng.integers(0, 20, n)]})
    _pickle(folder / "meta", {"fine_label_names": [f"class{i}" for i in range(100)], "coarse_label_names": []})
    d = load_dataset("cifar100", tmp_path, val_size=0.25)
    check_splits(d, (3, 32, 32), 100, total_train=12)
    assert len(d.val_y) == 3 and d.classes[99] == "class99"


def test_corrupt_cifar_file_is_a_dataset_error(tmp_path):
    write_cifar10(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").write_bytes(b"not a pickle")
    with pytest.raises(DatasetError, match="data_batch_3"):
        load_dataset("cifar10", tmp_path)


def test_python2_files_use_only_numpy_array_globals(tmp_path):
    """The writer above makes what the official files hold: the three globals of a numpy array."""
    write_cifar10(tmp_path)
    raw = (tmp_path / "cifar-10-batches-py" / "data_batch_1").read_bytes()
    ops = list(pickletools.genops(raw))
    assert ops[0][0].name == "PROTO" and ops[0][1] == 2
    assert {arg for op, arg, _ in ops if op.name == "GLOBAL"} == {
        "numpy.core.multiarray _reconstruct", "numpy ndarray", "numpy dtype"}
    assert not any(op.name in ("BINUNICODE", "SHORT_BINUNICODE") for op, _, _ in ops)  # text as Python 2 str


@pytest.mark.parametrize("fmt", [2, 3, 4, 5])
def test_cifar_files_pickled_by_python3_load_at_every_protocol(tmp_path, monkeypatch, fmt):
    monkeypatch.setattr(sys.modules[__name__], "PICKLE_FORMAT", fmt)
    batches = write_cifar10(tmp_path)
    d = load_dataset("cifar10", tmp_path, val_size=2)
    check_splits(d, (3, 32, 32), 10, total_train=20)
    first = torch.from_numpy(batches[0][0][0].reshape(3, 32, 32))
    assert any(torch.equal(x, first) for x in torch.cat([d.train_x, d.val_x]))


class Payload:
    """Pickles as a call of ``func(*args)``: what a crafted pickle runs when it is loaded."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def payloads(marker):
    """Crafted entries that, unpickled by plain pickle, each create ``marker``."""
    return {
        "os.system": Payload(os.system, f"touch '{marker}'"),
        "builtins.exec": Payload(builtins.exec, f"open({str(marker)!r}, 'w').close()"),
        "subprocess": Payload(subprocess.call, [sys.executable, "-c", f"open({str(marker)!r}, 'w').close()"]),
        "numpy method": Payload(np.ndarray.tofile, np.zeros(1), str(marker)),  # numpy, but not an array global
    }


@pytest.mark.parametrize("kind", ["os.system", "builtins.exec", "subprocess", "numpy method"])
@pytest.mark.parametrize("fmt", [2, 4])
def test_crafted_cifar_batch_is_refused_and_its_payload_never_runs(tmp_path, kind, fmt):
    write_cifar10(tmp_path)
    marker = tmp_path / "pwned"
    batch = tmp_path / "cifar-10-batches-py" / "data_batch_1"
    rows = np.zeros((4, 3072), dtype=np.uint8)
    # The payload hides among real entries, after an array the unpickler has already accepted.
    _pickle(batch, {"data": rows, "labels": [0, 1, 2, 3], "filenames": [payloads(marker)[kind]]}, fmt)
    with pytest.raises(DatasetError) as err:
        load_dataset("cifar10", tmp_path)
    msg = str(err.value)
    assert "\n" not in msg and str(batch) in msg and "refused" in msg
    assert not marker.exists()
    with open(batch, "rb") as f:  # the file really is hostile: plain pickle runs it
        pickle.load(f)
    assert marker.exists()


def test_malformed_cifar_arrays_are_one_line(tmp_path):
    write_cifar10(tmp_path)
    folder = tmp_path / "cifar-10-batches-py"
    _pickle(folder / "data_batch_2", {"data": np.zeros((4, 100), dtype=np.uint8), "labels": [0, 1, 2, 3]})
    with pytest.raises(DatasetError, match="data_batch_2.*3072"):
        load_dataset("cifar10", tmp_path)
    _pickle(folder / "data_batch_2", {"data": np.zeros((4, 3072), dtype=np.uint8), "labels": [0, 1]})
    with pytest.raises(DatasetError, match="data_batch_2 holds 4 images but 2 labels"):
        load_dataset("cifar10", tmp_path)


# --- MNIST / Fashion-MNIST: idx files, read by torchvision itself --------------------------------
def write_idx(folder, prefix, n, rng):
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, n).astype(np.uint8)
    (folder / f"{prefix}-images-idx3-ubyte").write_bytes(struct.pack(">iiii", 0x0803, n, 28, 28) + images.tobytes())
    (folder / f"{prefix}-labels-idx1-ubyte").write_bytes(struct.pack(">ii", 0x0801, n) + labels.tobytes())
    return images, labels


@pytest.mark.parametrize("name,sub", [("mnist", "MNIST"), ("fashion-mnist", "FashionMNIST")])
def test_mnist_family_tiny_idx_files(tmp_path, name, sub):
    raw = tmp_path / sub / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(2)
    images, labels = write_idx(raw, "train", 15, rng)
    write_idx(raw, "t10k", 4, rng)
    d = load_dataset(name, tmp_path, val_size=5)
    check_splits(d, (1, 28, 28), 10, total_train=15)
    assert len(d.val_y) == 5 and len(d.test_y) == 4
    everything = torch.cat([d.train_x, d.val_x])[:, 0]
    i = next(i for i in range(15) if torch.equal(everything[i], torch.from_numpy(images[0])))
    assert torch.cat([d.train_y, d.val_y])[i] == int(labels[0])


def test_crafted_mnist_processed_file_is_refused_by_weights_only_load(tmp_path):
    """torchvision prefers an old MNIST/processed/{training,test}.pt to the raw files; it reads
    them with torch.load(weights_only=True), so a crafted one is an error, not a payload run."""
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(4)
    write_idx(raw, "train", 6, rng)
    write_idx(raw, "t10k", 3, rng)
    processed = tmp_path / "MNIST" / "processed"
    processed.mkdir()
    marker = tmp_path / "pwned"
    for name in ("training.pt", "test.pt"):
        torch.save({"data": payloads(marker)["os.system"]}, processed / name)
    with pytest.raises(DatasetError) as err:
        load_dataset("mnist", tmp_path)
    msg = str(err.value)
    assert "\n" not in msg and str(processed) in msg and "refused" in msg and "weights_only" not in msg
    assert not marker.exists()


# --- SVHN: .mat files ----------------------------------------------------------------------------
def test_svhn_tiny_mat_files(tmp_path):
    sio = pytest.importorskip("scipy.io", reason="scipy is needed to write/read SVHN .mat files")
    rng = np.random.default_rng(3)
    for name, n in (("train_32x32.mat", 10), ("test_32x32.mat", 3)):
        x = rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8)  # H x W x C x N, as distributed
        y = rng.integers(1, 11, (n, 1)).astype(np.uint8)  # 1..10; 10 means digit 0
        y[0, 0] = 10
        sio.savemat(str(tmp_path / name), {"X": x, "y": y})
        if name.startswith("test"):
            test_x, test_y = x, y
    d = load_dataset("svhn", tmp_path, val_size=2)
    check_splits(d, (3, 32, 32), 10, total_train=10)
    assert d.test_y[0] == 0 and torch.equal(d.test_y[1:], torch.from_numpy(test_y[1:, 0].astype(np.int64)) % 10)
    assert d.test_x[1, 2, 5, 7] == test_x[5, 7, 2, 1]  # N x C x H x W from H x W x C x N


# --- imagefolder ---------------------------------------------------------------------------------
def write_images(folder, classes=("cat", "dog"), per_class=5, size=(6, 6), seed=0):
    from PIL import Image

    rng = np.random.default_rng(seed)
    for c in classes:
        (folder / c).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            h, w = size if not callable(size) else size(i)
            Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(folder / c / f"{i}.png")


def test_imagefolder_carves_test(tmp_path):
    write_images(tmp_path, per_class=10)
    d = load_dataset(f"imagefolder:{tmp_path}", val_size=2)
    check_splits(d, (3, 6, 6), 2)
    assert d.classes == ["cat", "dog"] and sum(d.sizes().values()) == 20 and len(d.test_y) == 4


def test_imagefolder_train_test_subfolders_and_resize(tmp_path):
    write_images(tmp_path / "train", per_class=4)
    write_images(tmp_path / "test", per_class=2, seed=1)
    d = load_dataset(f"imagefolder:{tmp_path}", val_size=1)
    check_splits(d, (3, 6, 6), 2, total_train=8)
    assert len(d.test_y) == 4
    mixed = tmp_path / "mixed"
    write_images(mixed, size=lambda i: (6, 6) if i % 2 else (8, 5))
    with pytest.raises(DatasetError, match="differ in size.*--image-size"):
        load_dataset(f"imagefolder:{mixed}")
    d = load_dataset(f"imagefolder:{mixed}", image_size=4, val_size=1)
    assert d.input_shape == (3, 4, 4)


def test_imagefolder_errors(tmp_path):
    with pytest.raises(DatasetError, match="not a directory"):
        load_dataset(f"imagefolder:{tmp_path / 'nope'}")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="at least two class folders"):
        load_dataset(f"imagefolder:{tmp_path / 'empty'}")
    with pytest.raises(DatasetError, match="imagefolder"):
        load_dataset("digits", image_size=4)


# --- missing files, download off / failing -------------------------------------------------------
@pytest.mark.parametrize("name", ["cifar10", "cifar100", "mnist", "fashion-mnist", "svhn"])
def test_missing_files_name_directory_and_files(tmp_path, name):
    folder, files = expected_files(name, tmp_path)
    with pytest.raises(DatasetError) as err:
        load_dataset(name, tmp_path, download=False)
    msg = str(err.value)
    assert "\n" not in msg and str(folder) in msg and all(f in msg for f in files)


def test_partly_missing_files_are_named(tmp_path):
    write_cifar10(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "test_batch").unlink()
    with pytest.raises(DatasetError, match=r"missing: test_batch"):
        load_dataset("cifar10", tmp_path)


def test_failed_download_is_one_line(tmp_path, monkeypatch):
    import torchvision

    def offline(*args, **kwargs):
        raise OSError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", offline)
    with pytest.raises(DatasetError) as err:
        load_dataset("cifar10", tmp_path / "data", download=True)
    msg = str(err.value)
    assert "\n" not in msg and "downloading" in msg and "name resolution" in msg and "data_batch_1" in msg

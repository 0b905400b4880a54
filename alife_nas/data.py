"""Data sets as train / validation / test tensors (uint8 images N x C x H x W, int64 labels).

Everything is loaded into memory at once: the trainer moves whole splits to the device, so no
Dataset / DataLoader objects are kept. The validation split is always carved out of the
training data with ``split_seed``; the test split is the data set's own test set (or a fixed 20%
carve where there is none) and is only used to report a finished model.

Where the files go (``data_dir`` defaults to ``data``), the same layout torchvision uses:

    cifar10        DIR/cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}
    cifar100       DIR/cifar-100-python/{train, test, meta}
    mnist          DIR/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte
    fashion-mnist  DIR/FashionMNIST/raw/ (same four names as mnist)
    svhn           DIR/{train_32x32.mat, test_32x32.mat}
    digits         bundled with scikit-learn, nothing to download
    imagefolder:P  P/CLASS/*.png (test carved), or P/train/CLASS/... and P/test/CLASS/...

Image folders are read by :mod:`alife_nas.imagefolder`: decoded once (any size and mode: grey
stays 1 channel only when every image is grey, else RGB; resized to ``image_size``) and cached as
an .npz under :func:`imagefolder_cache_dir`, keyed on the files' names, sizes and modification times.

With ``download=True`` missing files are fetched by torchvision. CIFAR and SVHN files are read
here in torchvision's exact on-disk format rather than through torchvision's classes, because
those refuse any file whose md5 differs from the official one (and so any tiny test file). CIFAR
pickles are read with an unpickler that admits numpy arrays and plain containers only.
"""
from __future__ import annotations

import codecs
import os
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from alife_nas.config import DataConfig
from alife_nas.dataset_error import DatasetError
from alife_nas.genome import one_line
from alife_nas.imagefolder import IMAGE_EXTENSIONS, imagefolder_cache_dir, read_imagefolder

__all__ = ["DataSplits", "DatasetError", "DATASETS", "IMAGE_EXTENSIONS", "load_dataset", "load_data", "expected_files",
           "imagefolder_cache_dir"]

#: Names load_dataset accepts (plus ``imagefolder:PATH``).
DATASETS = ("digits", "cifar10", "cifar100", "mnist", "fashion-mnist", "svhn")

DIGITS_TEST_SEED = 20240601  # fixed: the digits / imagefolder test split never moves
CARVED_TEST_FRACTION = 0.2


@dataclass
class DataSplits:
    """Train / validation / test splits of one data set, as in-memory tensors.

    Images are uint8 N x C x H x W, labels int64. ``mean``/``std`` are per channel, in 0..255
    units, computed from the training split only.
    """

    name: str
    train_x: torch.Tensor = field(repr=False)
    train_y: torch.Tensor = field(repr=False)
    val_x: torch.Tensor = field(repr=False)
    val_y: torch.Tensor = field(repr=False)
    test_x: torch.Tensor = field(repr=False)
    test_y: torch.Tensor = field(repr=False)
    num_classes: int
    input_shape: tuple[int, int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    classes: list[str] | None = field(default=None, repr=False)

    def sizes(self) -> dict[str, int]:
        """Number of images in each split."""
        return {"train": len(self.train_y), "val": len(self.val_y), "test": len(self.test_y)}

    def __repr__(self) -> str:
        s = self.sizes()
        return (
            f"DataSplits({self.name!r}, train={s['train']}, val={s['val']}, test={s['test']}, "
            f"shape={self.input_shape}, classes={self.num_classes})"
        )


# --- splitting ---------------------------------------------------------------------------------
def _count(size: float | int, n: int, what: str) -> int:
    """A fraction (0 < size < 1) or an absolute count -> a count that leaves both sides non-empty."""
    if isinstance(size, bool) or not isinstance(size, (int, float)) or size <= 0:
        raise DatasetError(f"{what} must be a fraction in (0, 1) or a positive count, got {size!r}")
    if isinstance(size, float) and size < 1:
        count = max(1, int(round(size * n)))
    elif float(size).is_integer():
        count = int(size)
    else:
        raise DatasetError(f"{what} must be a fraction in (0, 1) or a whole count, got {size!r}")
    if count >= n:
        raise DatasetError(f"{what} of {size!r} leaves no training images (only {n} available)")
    return count


def _carve(x: torch.Tensor, y: torch.Tensor, size: float | int, seed: int, what: str):
    """Split (x, y) into (rest, carved) with a seeded permutation."""
    n = len(y)
    count = _count(size, n, what)
    perm = torch.from_numpy(np.random.default_rng(seed).permutation(n))
    carved, rest = perm[:count], perm[count:]
    return x[rest], y[rest], x[carved], y[carved]


def _finish(
    name: str,
    train: tuple[torch.Tensor, torch.Tensor],
    test: tuple[torch.Tensor, torch.Tensor],
    val_size: float | int,
    split_seed: int,
    classes: Sequence[str] | None,
    num_classes: int | None = None,
) -> DataSplits:
    """Carve validation from train, compute train-only statistics, check shapes."""
    train_x, train_y = train
    test_x, test_y = test
    train_x, train_y, val_x, val_y = _carve(train_x, train_y, val_size, split_seed, "val_size")
    train_x, val_x, test_x = (t.contiguous() for t in (train_x, val_x, test_x))
    flat = train_x.permute(1, 0, 2, 3).reshape(train_x.shape[1], -1).double()
    mean = tuple(float(v) for v in flat.mean(1))
    std = tuple(max(float(v), 1e-3) for v in flat.std(1))  # guard constant channels
    if num_classes is None:
        num_classes = len(classes) if classes else int(max(train_y.max(), test_y.max())) + 1
    return DataSplits(
        name=name,
        train_x=train_x,
        train_y=train_y.long(),
        val_x=val_x,
        val_y=val_y.long(),
        test_x=test_x,
        test_y=test_y.long(),
        num_classes=num_classes,
        input_shape=tuple(int(v) for v in train_x.shape[1:]),  # type: ignore[arg-type]
        mean=mean,
        std=std,
        classes=list(classes) if classes else None,
    )


# --- file checks -------------------------------------------------------------------------------
_MNIST_FILES = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]
_LAYOUT: dict[str, tuple[str, list[str]]] = {
    "cifar10": ("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]),
    "cifar100": ("cifar-100-python", ["train", "test", "meta"]),
    "mnist": (os.path.join("MNIST", "raw"), _MNIST_FILES),
    "fashion-mnist": (os.path.join("FashionMNIST", "raw"), _MNIST_FILES),
    "svhn": ("", ["train_32x32.mat", "test_32x32.mat"]),
}


def expected_files(name: str, data_dir: str | os.PathLike = "data") -> tuple[Path, list[str]]:
    """The directory a torchvision data set lives in and the file names expected there."""
    sub, files = _LAYOUT[name]
    return Path(data_dir) / sub if sub else Path(data_dir), list(files)


def _ensure_files(name: str, data_dir: str | os.PathLike, download: bool, fetch: Callable[[], Any]) -> Path:
    """Return the data set's directory; download missing files or raise a one-line DatasetError."""
    folder, files = expected_files(name, data_dir)
    missing = [f for f in files if not (folder / f).is_file()]
    if not missing:
        return folder
    hint = f"{name} not found: expected {', '.join(files)} in {folder}"
    if not download:
        which = "" if len(missing) == len(files) else f" (missing: {', '.join(missing)})"
        raise DatasetError(f"{hint}{which}; download it (the download option) on a machine with internet, or copy the files there")
    try:
        os.makedirs(data_dir, exist_ok=True)
        fetch()
    except Exception as exc:  # no internet, proxy, disk full ... -> one line
        reason = one_line(exc) or type(exc).__name__
        raise DatasetError(f"{hint}; downloading into {data_dir} failed ({reason}); copy the files there by hand") from None
    still = [f for f in files if not (folder / f).is_file()]
    if still:
        raise DatasetError(f"{hint}; after downloading, still missing: {', '.join(still)}")
    return folder


# --- readers -----------------------------------------------------------------------------------
def _array_globals() -> dict[tuple[str, str], Any]:
    """The globals a pickled numpy array names, under every module name numpy has pickled them.

    A CIFAR batch is a dict of text, ints, lists and uint8 arrays; only the arrays need globals:
    ``_reconstruct`` + ``ndarray`` + ``dtype`` (protocols 0-4; ``numpy.core`` in the official
    Python 2 files, ``numpy._core`` from numpy 2), ``_frombuffer`` (protocol 5, Python 3.14's
    default) and ``_codecs.encode`` (how Python 3 writes the array's bytes at protocol 2).
    Taken from numpy's own pickling, so they are the very functions numpy would call.
    """
    reconstruct = np.zeros(0).__reduce__()[0]
    frombuffer = np.zeros(0).__reduce_ex__(5)[0]
    allowed: dict[tuple[str, str], Any] = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype,
                                           ("_codecs", "encode"): codecs.encode}
    for package in ("numpy.core", "numpy._core"):
        allowed[(f"{package}.multiarray", "_reconstruct")] = reconstruct
        allowed[(f"{package}.numeric", "_frombuffer")] = frombuffer
    return allowed


class _RefusedGlobal(pickle.UnpicklingError):
    """A pickle asked for a global that no CIFAR batch needs."""


class _CifarUnpickler(pickle.Unpickler):
    """Unpickles data only: numpy arrays and plain containers, never a function call of the file's
    choosing (a crafted ``data_batch_1`` would otherwise run its payload on load)."""

    ALLOWED = _array_globals()

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self.ALLOWED[(module, name)]
        except KeyError:
            raise _RefusedGlobal(f"{module}.{name}") from None

    def persistent_load(self, pid: Any) -> Any:
        raise _RefusedGlobal("a persistent id")


def _unpickle(path: Path) -> dict[str, Any]:
    """Read one CIFAR pickle like torchvision does (latin1), accepting bytes or str keys; any
    global besides numpy's array reconstruction is refused before it is called."""
    try:
        with open(path, "rb") as f:
            entry = _CifarUnpickler(f, encoding="latin1").load()
    except _RefusedGlobal as exc:
        raise DatasetError(f"{path} is not a plain CIFAR pickle: it asks for {one_line(exc)!r}, which a "
                           "CIFAR batch never holds (refused; nothing in it was run)") from None
    except Exception as exc:
        raise DatasetError(f"{path} is not a readable CIFAR pickle ({type(exc).__name__}: {one_line(exc)})") from None
    if not isinstance(entry, dict):
        raise DatasetError(f"{path} is not a CIFAR pickle (expected a dict, got {type(entry).__name__})")
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in entry.items()}


def _cifar_batches(folder: Path, names: Sequence[str], label_key: str) -> tuple[torch.Tensor, torch.Tensor]:
    xs, ys = [], []
    for name in names:
        entry = _unpickle(folder / name)
        if "data" not in entry or label_key not in entry:
            raise DatasetError(f"{folder / name} lacks the 'data' or '{label_key}' entry of a CIFAR pickle")
        try:
            x = np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
            y = np.asarray(entry[label_key], dtype=np.int64).reshape(-1)
        except (ValueError, TypeError, OverflowError) as exc:
            raise DatasetError(f"{folder / name}: 'data' is not N rows of 3072 bytes or '{label_key}' not N "
                               f"integers ({one_line(exc)})") from None
        if len(x) != len(y):
            raise DatasetError(f"{folder / name} holds {len(x)} images but {len(y)} labels")
        xs.append(x)
        ys.append(y)
    return torch.from_numpy(np.concatenate(xs)), torch.from_numpy(np.concatenate(ys))


def _load_cifar(name: str, data_dir: str | os.PathLike, download: bool):
    import torchvision

    cls = torchvision.datasets.CIFAR10 if name == "cifar10" else torchvision.datasets.CIFAR100
    folder = _ensure_files(name, data_dir, download, lambda: cls(str(data_dir), train=True, download=True))
    if name == "cifar10":
        train = _cifar_batches(folder, [f"data_batch_{i}" for i in range(1, 6)], "labels")
        test = _cifar_batches(folder, ["test_batch"], "labels")
        classes = _unpickle(folder / "batches.meta").get("label_names")
    else:
        train = _cifar_batches(folder, ["train"], "fine_labels")
        test = _cifar_batches(folder, ["test"], "fine_labels")
        classes = _unpickle(folder / "meta").get("fine_label_names")
    n = 10 if name == "cifar10" else 100
    return train, test, classes, n


def _load_mnist(name: str, data_dir: str | os.PathLike, download: bool):
    import torchvision

    cls = torchvision.datasets.MNIST if name == "mnist" else torchvision.datasets.FashionMNIST
    _ensure_files(name, data_dir, download, lambda: (cls(str(data_dir), train=True, download=True), cls(str(data_dir), train=False, download=True)))
    # torchvision reads the raw idx files itself (it checks only that they exist); an old
    # processed/*.pt it prefers is read with torch.load(weights_only=True), which refuses code.
    try:
        sets = [cls(str(data_dir), train=flag, download=False) for flag in (True, False)]
    except pickle.UnpicklingError:
        processed = expected_files(name, data_dir)[0].parent / "processed"
        raise DatasetError(f"{processed} holds a torch file that is not plain tensors (refused unread; nothing in it "
                           f"was run); delete {processed} to read the raw files") from None
    except Exception as exc:
        raise DatasetError(f"cannot read {name} from {expected_files(name, data_dir)[0]}: {one_line(exc)}") from None
    (train, test) = ((s.data.unsqueeze(1).to(torch.uint8), s.targets.long()) for s in sets)
    return train, test, list(sets[0].classes), 10


def _load_svhn(data_dir: str | os.PathLike, download: bool):
    import torchvision

    def fetch() -> None:
        for split in ("train", "test"):
            torchvision.datasets.SVHN(str(data_dir), split=split, download=True)

    folder = _ensure_files("svhn", data_dir, download, fetch)
    try:
        import scipy.io as sio
    except ImportError:  # pragma: no cover - scipy comes with scikit-learn
        raise DatasetError("reading svhn needs scipy (pip install scipy)") from None

    def read(file: str) -> tuple[torch.Tensor, torch.Tensor]:
        try:
            mat = sio.loadmat(str(folder / file))
            x, y = mat["X"], mat["y"]
        except Exception as exc:
            raise DatasetError(f"{folder / file} is not a readable SVHN .mat file ({type(exc).__name__}: {one_line(exc)})") from None
        # Same as torchvision: X is H x W x C x N, label 10 means digit 0.
        y = y.astype(np.int64).squeeze(-1) if y.ndim == 2 else y.astype(np.int64)
        y[y == 10] = 0
        return torch.from_numpy(np.ascontiguousarray(np.transpose(x, (3, 2, 0, 1))).astype(np.uint8)), torch.from_numpy(y)

    return read("train_32x32.mat"), read("test_32x32.mat"), [str(i) for i in range(10)], 10


def _load_digits():
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = np.rint(bunch.images * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)  # 0..16 -> 0..255
    x = torch.from_numpy(images).unsqueeze(1)
    y = torch.from_numpy(bunch.target.astype(np.int64))
    train_x, train_y, test_x, test_y = _carve(x, y, CARVED_TEST_FRACTION, DIGITS_TEST_SEED, "test split")
    return (train_x, train_y), (test_x, test_y), [str(i) for i in range(10)], 10


# --- image folders -----------------------------------------------------------------------------
def _load_imagefolder(path: str, image_size: tuple[int, int] | None):
    """An image folder (:mod:`alife_nas.imagefolder`) as tensors; without a test half, one is carved."""
    arrays, classes = read_imagefolder(path, image_size)
    if len(arrays) == 2:
        (train_x, train_y), (test_x, test_y) = ((torch.from_numpy(x), torch.from_numpy(y)) for x, y in arrays)
    else:
        x, y = (torch.from_numpy(a) for a in arrays[0])
        train_x, train_y, test_x, test_y = _carve(x, y, CARVED_TEST_FRACTION, DIGITS_TEST_SEED, "test split")
    return (train_x, train_y), (test_x, test_y), classes, len(classes)


def load_dataset(
    name: str,
    data_dir: str | os.PathLike = "data",
    val_size: float | int = DataConfig.val_size,
    split_seed: int = DataConfig.split_seed,
    download: bool = False,
    image_size: int | tuple[int, int] | None = None,
) -> DataSplits:
    """Load a data set by name as train / val / test tensors (see the module docstring).

    ``val_size`` is a fraction of the training data (0 < f < 1) or an absolute count.
    ``image_size`` (imagefolder only) resizes every image to that size (an int: a square);
    without it all images must already share one size.
    """
    key = str(name).strip().lower()
    if isinstance(image_size, int):
        image_size = (image_size, image_size)
    if image_size is not None and not key.startswith("imagefolder:"):
        raise DatasetError("image_size only applies to imagefolder:PATH data sets")
    if key.startswith("imagefolder:"):
        path = str(name).strip()[len("imagefolder:"):]
        if not path:
            raise DatasetError("imagefolder needs a path: imagefolder:PATH")
        train, test, classes, n = _load_imagefolder(path, image_size)
    elif key == "digits":
        train, test, classes, n = _load_digits()
    elif key in ("cifar10", "cifar100"):
        train, test, classes, n = _load_cifar(key, data_dir, download)
    elif key in ("mnist", "fashion-mnist"):
        train, test, classes, n = _load_mnist(key, data_dir, download)
    elif key == "svhn":
        train, test, classes, n = _load_svhn(data_dir, download)
    else:
        raise DatasetError(f"unknown data set {name!r}; valid names: {', '.join(DATASETS)}, imagefolder:PATH")
    for split, (x, y) in (("train", train), ("test", test)):
        if x.ndim != 4 or len(x) != len(y) or len(y) == 0:
            raise DatasetError(f"{name}: {split} split is empty or malformed (images {tuple(x.shape)}, labels {tuple(y.shape)})")
    if train[0].shape[1:] != test[0].shape[1:]:
        raise DatasetError(f"{name}: train and test images differ in shape ({tuple(train[0].shape[1:])} vs {tuple(test[0].shape[1:])})")
    bad = int(max(train[1].max(), test[1].max()))
    if bad >= n or int(min(train[1].min(), test[1].min())) < 0:
        raise DatasetError(f"{name}: labels outside 0..{n - 1} (found {bad})")
    return _finish(key if not key.startswith("imagefolder:") else str(name).strip(), train, test, val_size, split_seed, classes, n)


def load_data(config: DataConfig, download: bool = False) -> DataSplits:
    """The data set a search configuration names, split as it says."""
    return load_dataset(config.dataset, config.data_dir, val_size=config.val_size, split_seed=config.split_seed,
                        download=download, image_size=config.image_size)

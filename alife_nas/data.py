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

Image folders are decoded once (any size and mode: grey stays 1 channel only when every image is
grey, else RGB; resized to ``image_size``) and cached as an .npz under
:func:`imagefolder_cache_dir`, keyed on the files' names, sizes and modification times.

With ``download=True`` missing files are fetched by torchvision. CIFAR and SVHN files are read
here in torchvision's exact on-disk format rather than through torchvision's classes, because
those refuse any file whose md5 differs from the official one (and so any tiny test file). CIFAR
pickles are read with an unpickler that admits numpy arrays and plain containers only.
"""
from __future__ import annotations

import codecs
import contextlib
import os
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from alife_nas.config import DataConfig

__all__ = ["DataSplits", "DatasetError", "DATASETS", "IMAGE_EXTENSIONS", "load_dataset", "load_data", "expected_files",
           "imagefolder_cache_dir"]

#: Names load_dataset accepts (plus ``imagefolder:PATH``).
DATASETS = ("digits", "cifar10", "cifar100", "mnist", "fashion-mnist", "svhn")

DIGITS_TEST_SEED = 20240601  # fixed: the digits / imagefolder test split never moves
CARVED_TEST_FRACTION = 0.2


class DatasetError(ValueError):
    """A data set cannot be loaded; the one-line message says where and what was expected."""


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
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise DatasetError(f"{hint}; downloading into {data_dir} failed ({reason}); copy the files there by hand") from None
    still = [f for f in files if not (folder / f).is_file()]
    if still:
        raise DatasetError(f"{hint}; after downloading, still missing: {', '.join(still)}")
    return folder


# --- readers -----------------------------------------------------------------------------------
def _one_line(text: object, limit: int = 200) -> str:
    """Text from a file or an exception squeezed onto one short line (it may hold newlines)."""
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


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
        raise DatasetError(f"{path} is not a plain CIFAR pickle: it asks for {_one_line(exc, 80)!r}, which a "
                           "CIFAR batch never holds (refused; nothing in it was run)") from None
    except Exception as exc:
        raise DatasetError(f"{path} is not a readable CIFAR pickle ({type(exc).__name__}: {_one_line(exc)})") from None
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
                               f"integers ({_one_line(exc)})") from None
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
        raise DatasetError(f"cannot read {name} from {expected_files(name, data_dir)[0]}: {_one_line(exc, 300)}") from None
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
            raise DatasetError(f"{folder / file} is not a readable SVHN .mat file ({type(exc).__name__}: {exc})") from None
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
#: File name endings read as images (any case); every other file, and any hidden one, is ignored.
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".ppm", ".pgm", ".pbm", ".tif", ".tiff", ".webp")
#: PIL modes that hold one grey channel (with or without alpha); a folder of only these stays 1-channel.
_GRAY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"})
#: Bump when what a cache file holds, or how images are decoded, changes: old files are then unused.
IMAGEFOLDER_CACHE_VERSION = 1


@dataclass(frozen=True)
class _ImageFile:
    """One image file of a folder, with what the cache key needs from it."""

    path: str
    rel: str  # relative to the image folder, '/'-separated
    label: int
    size: int
    mtime_ns: int


@dataclass
class _FolderPart:
    """The classes and image files of one folder (the whole data set, or its train or test half)."""

    root: Path
    classes: list[str]
    files: list[_ImageFile]


def _visible(name: str) -> bool:
    return not name.startswith(".")


def _is_loop(real: str, seen: set[str], root_real: str) -> bool:
    """A directory already read, or one that holds the image folder itself (a link back up)."""
    return real in seen or root_real == real or root_real.startswith(real.rstrip(os.sep) + os.sep)


def _list_folder(root: Path, rel_base: str) -> _FolderPart:
    """Class folders (sorted, hidden ones ignored) and their image files, found recursively.

    Directory symlinks are followed, but each real directory is read once and a link to the image
    folder or above it is skipped, so a symlink loop cannot count a file twice; a file reached by
    two names (hard or symbolic links) also counts once, under the first name in sorted order.
    """
    try:
        entries = sorted((e for e in os.scandir(root) if _visible(e.name)), key=lambda e: e.name)
        class_dirs = [(e.name, e.path) for e in entries if e.is_dir()]
    except OSError as exc:
        raise DatasetError(f"imagefolder: cannot read {root}: {exc.strerror or exc}") from None
    root_real = os.path.realpath(root)
    seen = {root_real}
    classes: list[tuple[str, str]] = []
    by_real: dict[str, str] = {}
    for name, path in class_dirs:
        real = os.path.realpath(path)
        if real in by_real:
            raise DatasetError(f"imagefolder: class folders {by_real[real]!r} and {name!r} in {root} are the same "
                               "directory (symlinks); keep one")
        if _is_loop(real, seen, root_real):
            continue  # e.g. PATH/again -> PATH: a loop, not a class
        seen.add(real)
        by_real[real] = name
        classes.append((name, path))
    if len(classes) < 2:
        found = f"only {classes[0][0]!r}" if classes else "none"
        raise DatasetError(f"imagefolder: {root} needs at least two class folders (CLASS_NAME/IMAGE files), found {found}")
    def unreadable(exc: OSError) -> None:  # os.walk would silently leave the folder's images out
        raise DatasetError(f"imagefolder: cannot read folder {exc.filename}: {exc.strerror or exc}")

    files: list[_ImageFile] = []
    inodes: set[tuple[int, int]] = set()
    for label, (name, class_path) in enumerate(classes):
        before = len(files)
        for dirpath, dirnames, filenames in os.walk(class_path, onerror=unreadable, followlinks=True):
            keep = []
            for d in sorted(filter(_visible, dirnames)):
                real = os.path.realpath(os.path.join(dirpath, d))
                if not _is_loop(real, seen, root_real):
                    seen.add(real)
                    keep.append(d)
            dirnames[:] = keep  # os.walk descends only into these, in this order
            for f in sorted(filenames):
                if not _visible(f) or not f.lower().endswith(IMAGE_EXTENSIONS):
                    continue
                path = os.path.join(dirpath, f)
                rel = "/".join(filter(None, [rel_base, os.path.relpath(path, root).replace(os.sep, "/")]))
                try:
                    st = os.stat(path)
                except OSError:  # a dangling link: the unreadable-image check reports it
                    files.append(_ImageFile(path, rel, label, -1, -1))
                    continue
                if (st.st_dev, st.st_ino) in inodes and st.st_ino:
                    continue
                inodes.add((st.st_dev, st.st_ino))
                files.append(_ImageFile(path, rel, label, st.st_size, st.st_mtime_ns))
        if len(files) == before:
            raise DatasetError(f"imagefolder: class folder {Path(class_path)} holds no images "
                               f"({', '.join(IMAGE_EXTENSIONS)}); remove it or add images")
    return _FolderPart(root, [name for name, _ in classes], files)


def _probe_image(_index: int, file: _ImageFile) -> tuple[str, tuple[int, int]]:
    """The mode and (width, height) of an image, read from its header only."""
    import stat

    from PIL import Image

    if not stat.S_ISREG(os.stat(file.path).st_mode):  # a FIFO or device named x.png would block or never end
        raise OSError("not a regular file")
    with Image.open(file.path) as img:
        return img.mode, img.size


def _as_uint8(img: Any, gray: bool) -> np.ndarray:
    """A decoded PIL image as uint8 H x W (grey) or H x W x 3 (RGB), transparency over black."""
    from PIL import Image

    mode = img.mode
    if mode.startswith("I") or mode == "F":  # 16/32-bit or float grey: 16-bit range to 0..255
        wide = np.asarray(img, dtype=np.float64)
        if mode.startswith("I;16") or wide.max(initial=0) > 255:
            wide = wide / 257.0
        img = Image.fromarray(np.clip(np.rint(wide), 0, 255).astype(np.uint8), "L")
        mode = "L"
    if mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in img.info:
        rgba = np.asarray(img.convert("RGBA"), dtype=np.uint16)
        rgb = ((rgba[..., :3] * rgba[..., 3:] + 127) // 255).astype(np.uint8)  # composite over black
        return rgb.max(axis=2) if gray else rgb  # grey-with-alpha: the three channels are equal
    return np.asarray(img.convert("L" if gray else "RGB"))


def _decode_image(file: _ImageFile, gray: bool, size: tuple[int, int] | None) -> np.ndarray:
    """Decode, convert and resize one image to uint8 C x H x W."""
    from PIL import Image

    with Image.open(file.path) as img:
        if size is not None:
            img.draft("L" if gray else "RGB", (size[1], size[0]))  # JPEG: decode at 1/2..1/8 scale when smaller suffices
        array = _as_uint8(img, gray)
    if size is not None and array.shape[:2] != size:
        bilinear = getattr(Image, "Resampling", Image).BILINEAR  # Pillow < 9.1 has no Resampling
        array = np.asarray(Image.fromarray(array).resize((size[1], size[0]), bilinear))
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)


def _run_on_files(func: Callable[[int, _ImageFile], Any], files: list[_ImageFile], what: str, where: Path) -> list[Any]:
    """``func(index, file)`` over every file on a thread pool (PIL decodes without the GIL), results
    in order; any unreadable file is one DatasetError naming the first and counting the rest."""
    from concurrent.futures import ThreadPoolExecutor

    def attempt(index: int, file: _ImageFile) -> tuple[Any, str | None]:
        try:
            return func(index, file), None
        except Exception as exc:  # corrupt, truncated, not an image, a decompression bomb ...
            return None, _one_line(getattr(exc, "strerror", None) or exc) or type(exc).__name__

    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        results = list(pool.map(attempt, range(len(files)), files))
    bad = [(file, reason) for file, (_, reason) in zip(files, results) if reason is not None]
    if bad:
        (first, reason), more = bad[0], len(bad) - 1
        others = f" and {more} more of the {len(files)} images" if more else ""
        raise DatasetError(f"imagefolder: cannot {what} {first.path} ({reason}){others} under {where}; "
                           "fix or remove the unreadable files")
    return [value for value, _ in results]


def _decode_parts(root: Path, parts: list[_FolderPart],
                  image_size: tuple[int, int] | None) -> list[tuple[np.ndarray, np.ndarray]]:
    """Decode every part's images to one channel count and one size: uint8 N x C x H x W and labels."""
    files = [f for part in parts for f in part.files]
    probes = _run_on_files(_probe_image, files, "read image", root)
    gray = all(mode in _GRAY_MODES for mode, _ in probes)
    size = image_size
    if size is None:
        sizes: dict[tuple[int, int], int] = {}
        for _, wh in probes:
            sizes[wh] = sizes.get(wh, 0) + 1
        if len(sizes) > 1:
            common = max(sizes, key=lambda wh: (sizes[wh], wh))
            examples = ", ".join(f"{w}x{h}" for w, h in sorted(sizes)[:3]) + (", ..." if len(sizes) > 3 else "")
            raise DatasetError(f"imagefolder: images under {root} differ in size ({len(sizes)} sizes, width x height: "
                               f"{examples}; most common {common[0]}x{common[1]}): set image_size to resize them all to NxN "
                               "(evolve and train: --image-size N)")
        (w, h), = sizes
        size = (h, w)
    x = np.empty((len(files), 1 if gray else 3, *size), dtype=np.uint8)  # filled in place: one copy in memory

    def decode_into(index: int, file: _ImageFile) -> None:
        x[index] = _decode_image(file, gray, size)

    _run_on_files(decode_into, files, "decode image", root)
    out, start = [], 0
    for part in parts:
        stop = start + len(part.files)
        out.append((x[start:stop], np.array([f.label for f in part.files], dtype=np.int64)))
        start = stop
    return out


# --- the decoded image-folder cache ---------------------------------------------------------------
def imagefolder_cache_dir() -> Path | None:
    """Where decoded image folders are cached: ``$ALIFE_NAS_CACHE``, else ``$XDG_CACHE_HOME/alife_nas``,
    else ``~/.cache/alife_nas``; None (no cache) when ``ALIFE_NAS_CACHE`` is ``off``."""
    value = os.environ.get("ALIFE_NAS_CACHE", "").strip()
    if value.lower() in ("off", "0", "none", "false"):
        return None
    if value:
        return Path(value).expanduser()
    base = os.environ.get("XDG_CACHE_HOME", "").strip() or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "alife_nas"


def _cache_key(parts: list[_FolderPart], image_size: tuple[int, int] | None) -> str:
    """A hash of everything the decoded arrays depend on: files (relative name, class, size,
    modification time), classes, image_size, the cache format and the Pillow version."""
    import hashlib
    import json

    import PIL

    described = {
        "version": IMAGEFOLDER_CACHE_VERSION, "pillow": PIL.__version__,
        "image_size": list(image_size) if image_size else None,
        "parts": [[part.classes, [[f.rel, f.label, f.size, f.mtime_ns] for f in part.files]] for part in parts],
    }
    return hashlib.sha256(json.dumps(described, separators=(",", ":")).encode()).hexdigest()


def _read_cache(path: Path, key: str, parts: list[_FolderPart]) -> list[tuple[np.ndarray, np.ndarray]] | None:
    """The cached arrays, or None when there is no usable cache file (missing, foreign, damaged)."""
    try:
        with np.load(path, allow_pickle=False) as saved:
            if str(saved["key"]) != key:
                return None
            out = [(saved[f"x{i}"], saved[f"y{i}"]) for i in range(len(parts))]
    except Exception:  # a damaged cache is rebuilt, never trusted
        return None
    for (x, y), part in zip(out, parts):
        expected = [f.label for f in part.files]
        if x.dtype != np.uint8 or x.ndim != 4 or len(x) != len(part.files) or y.tolist() != expected:
            return None
    return out


def _write_cache(path: Path, key: str, arrays: list[tuple[np.ndarray, np.ndarray]]) -> None:
    """Write the cache file atomically: a temp file renamed into place, so a process killed
    midway leaves no cache (at worst a hidden ``.tmp``), never half of one. An unwritable cache
    directory is skipped: loading works without it, only slower."""
    import tempfile

    named = {f"{kind}{i}": a for i, (x, y) in enumerate(arrays) for kind, a in (("x", x), ("y", y))}
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem[:16]}-", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            np.savez(f, key=np.array(key), **named)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        tmp = None
    except OSError:  # read-only home, full disk ...
        pass
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def _load_imagefolder(path: str, image_size: tuple[int, int] | None):
    root = Path(path).expanduser()
    if not root.is_dir():
        raise DatasetError(f"imagefolder: {root} is not a directory (expected {root}/CLASS_NAME/IMAGE files)")
    split = (root / "train").is_dir() and (root / "test").is_dir()
    parts = [_list_folder(root / "train", "train"), _list_folder(root / "test", "test")] if split else [_list_folder(root, "")]
    if split and parts[1].classes != parts[0].classes:
        raise DatasetError(f"imagefolder: class folders differ between {root / 'train'} and {root / 'test'} "
                           f"({', '.join(parts[0].classes)} vs {', '.join(parts[1].classes)})")
    key = _cache_key(parts, image_size)
    folder = imagefolder_cache_dir()
    cache = folder / "imagefolder" / f"{key}.npz" if folder is not None else None
    arrays = _read_cache(cache, key, parts) if cache is not None else None
    if arrays is None:
        arrays = _decode_parts(root, parts, image_size)
        if cache is not None:
            _write_cache(cache, key, arrays)
    classes = parts[0].classes
    if split:
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

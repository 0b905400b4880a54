"""Image folders as data sets: ``PATH/CLASS/*.png`` (or ``PATH/train/CLASS/...`` and
``PATH/test/CLASS/...``) read into uint8 arrays, with a cache of the decoded data.

Images of any size and mode are read: grey stays 1 channel only when every image is grey, else
RGB; transparency is composited over black; ``image_size`` resizes them all. Class folders are
found recursively, symlink loops and files reached twice counted once, hidden files ignored; an
unreadable image is one error naming it. Decoding runs on a thread pool. The decoded arrays are
cached as an .npz under :func:`imagefolder_cache_dir`, keyed on the files' names, sizes and
modification times, written whole or not at all. numpy and Pillow only: :mod:`alife_nas.data`
turns the arrays into tensors and splits.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Callable

import numpy as np

from alife_nas.dataset_error import DatasetError
from alife_nas.files import write_atomically
from alife_nas.genome import one_line

__all__ = ["IMAGE_EXTENSIONS", "IMAGEFOLDER_CACHE_VERSION", "imagefolder_cache_dir", "read_imagefolder"]

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
            return None, one_line(getattr(exc, "strerror", None) or exc) or type(exc).__name__

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
    """Write the cache file whole or not at all (:func:`~alife_nas.files.write_atomically`), so a
    process killed midway leaves no cache, never half of one. An unwritable cache directory is
    skipped: loading works without it, only slower."""
    named = {f"{kind}{i}": a for i, (x, y) in enumerate(arrays) for kind, a in (("x", x), ("y", y))}

    def write(handle: IO[bytes]) -> None:
        np.savez(handle, key=np.array(key), **named)
        handle.flush()
        os.fsync(handle.fileno())

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(path, write)
    except OSError:  # read-only home, full disk ...
        pass


def read_imagefolder(path: str | os.PathLike,
                     image_size: tuple[int, int] | None = None) -> tuple[list[tuple[np.ndarray, np.ndarray]], list[str]]:
    """The decoded images and labels of the image folder ``path``, and its class names.

    One (x, y) pair for a folder of class folders, two -- train, test -- for a folder with
    ``train/`` and ``test/`` (their class folders must match); x is uint8 N x C x H x W, y int64.
    ``image_size`` (height, width) resizes every image; without it all must share one size.
    Read from the cache when it holds this folder as it is now, else decoded and cached.
    """
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
    return arrays, parts[0].classes

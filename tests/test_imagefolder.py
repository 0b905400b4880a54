"""imagefolder:PATH data sets: any size and mode, the decoded-data cache, hostile folders, and a real
search and CLI run on a generated folder."""
import itertools
import json
import os
import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image, features

import alife_nas.imagefolder as reader
from alife_nas import Search, SearchConfig
from alife_nas.data import DatasetError, imagefolder_cache_dir, load_dataset


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    """Each test caches under its own directory (never in ~/.cache); the fixture's value is it."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("ALIFE_NAS_CACHE", str(folder))
    return folder


@pytest.fixture
def decodes(monkeypatch):
    """Counts images decoded (not read from the cache)."""
    counter = {"n": 0}
    real = reader._decode_image

    def counting(*args, **kwargs):
        counter["n"] += 1  # list.append/int += under the GIL; exactness is checked on totals only
        return real(*args, **kwargs)

    monkeypatch.setattr(reader, "_decode_image", counting)
    return counter


def noise(h, w, channels=3, seed=0):
    shape = (h, w, channels) if channels > 1 else (h, w)
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def write_mixed(root):
    """Three classes, four images each, of twelve different sizes and of every common mode and format."""
    seeds = itertools.count()
    images = {
        "apple": [("a.png", Image.fromarray(noise(7, 10, seed=next(seeds)))),
                  ("b.png", Image.fromarray(noise(5, 5, 1, seed=next(seeds)), "L")),
                  ("c.png", Image.fromarray(noise(12, 8, 4, seed=next(seeds)), "RGBA")),
                  ("d.JPG", Image.fromarray(noise(12, 16, seed=next(seeds))))],
        "pear": [("e.gif", Image.fromarray(noise(9, 9, seed=next(seeds))).convert("P")),
                 ("f.bmp", Image.fromarray(noise(4, 6, 1, seed=next(seeds)) > 127)),
                 ("g.png", Image.fromarray(noise(7, 7, 2, seed=next(seeds)), "LA")),
                 ("h.png", Image.fromarray(noise(3, 12, 1, seed=next(seeds)).astype(np.uint16) * 257))],
        "plum": [("i.tiff", Image.fromarray(noise(11, 6, seed=next(seeds)))),
                 ("j.jpeg", Image.fromarray(noise(6, 13, 4, seed=next(seeds)), "CMYK")),
                 ("k.webp" if features.check("webp") else "k.ppm", Image.fromarray(noise(14, 9, seed=next(seeds)))),
                 ("l.pgm", Image.fromarray(noise(20, 17, 1, seed=next(seeds)), "L"))],
    }
    for cls, files in images.items():
        (root / cls).mkdir(parents=True, exist_ok=True)
        for name, img in files:
            img.save(root / cls / name)
    assert Image.open(root / "pear" / "h.png").mode == "I;16"  # a real 16-bit file
    return images


def write_uniform(root, classes=("cat", "dog"), per_class=6, size=(6, 6), mode="RGB"):
    for c, cls in enumerate(classes):
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            img = Image.fromarray(noise(*size, seed=10 * c + i))
            img.convert(mode).save(root / cls / f"{i}.png")


def everything(d):
    """All images and labels of the three splits."""
    return torch.cat([d.train_x, d.val_x, d.test_x]), torch.cat([d.train_y, d.val_y, d.test_y])


def one_line(err):
    msg = str(err.value)
    assert "\n" not in msg
    return msg


# --- sizes and modes ------------------------------------------------------------------------------
def test_mixed_sizes_and_modes_load_as_rgb_of_image_size(tmp_path):
    folder = tmp_path / "mixed"
    write_mixed(folder)
    d = load_dataset(f"imagefolder:{folder}", image_size=8, val_size=2)
    x, y = everything(d)
    assert x.shape == (12, 3, 8, 8) and x.dtype == torch.uint8 and d.input_shape == (3, 8, 8)
    assert d.classes == ["apple", "pear", "plum"] and d.num_classes == 3
    assert torch.bincount(y).tolist() == [4, 4, 4]
    assert d.sizes() == {"train": 8, "val": 2, "test": 2}
    with pytest.raises(DatasetError) as err:
        load_dataset(f"imagefolder:{folder}")
    msg = one_line(err)
    assert "differ in size" in msg and "--image-size" in msg and "12 sizes" in msg and str(folder) in msg


def test_pixel_values_after_conversion(tmp_path):
    """Transparency over black, grey to equal RGB channels, 16-bit to 0..255, palettes to colour."""
    folder = tmp_path / "values"
    (folder / "a").mkdir(parents=True)
    (folder / "b").mkdir()
    solid = {  # file -> image, expected RGB of every pixel
        "a/clear.png": (Image.new("RGBA", (4, 4), (255, 0, 0, 0)), (0, 0, 0)),
        "a/half.png": (Image.new("RGBA", (4, 4), (200, 100, 50, 128)), (100, 50, 25)),
        "a/palette.gif": (Image.new("RGB", (4, 4), (0, 255, 0)).convert("P"), (0, 255, 0)),
        "b/grey.png": (Image.new("L", (4, 4), 100), (100, 100, 100)),
        "b/wide.png": (Image.fromarray(np.full((4, 4), 65535, np.uint16)), (255, 255, 255)),
        "b/bit.bmp": (Image.new("1", (4, 4), 1), (255, 255, 255)),
    }
    for name, (img, _) in solid.items():
        img.save(folder / name)
    x, _ = everything(load_dataset(f"imagefolder:{folder}", val_size=1))
    assert x.shape == (6, 3, 4, 4)
    found = sorted(tuple(int(v) for v in img[:, 0, 0]) for img in x)
    assert all(bool((img == img[:, :1, :1]).all()) for img in x)  # still solid
    assert found == sorted(rgb for _, rgb in solid.values())


def test_an_all_grey_folder_stays_one_channel_and_keeps_its_size(tmp_path):
    folder = tmp_path / "grey"
    (folder / "a").mkdir(parents=True)
    (folder / "b").mkdir()
    Image.new("L", (5, 3), 100).save(folder / "a" / "l.png")
    Image.fromarray(np.full((3, 5), 65535, np.uint16)).save(folder / "a" / "i16.png")
    Image.new("LA", (5, 3), (50, 0)).save(folder / "b" / "la.png")
    Image.new("1", (5, 3), 1).save(folder / "b" / "bit.png")
    Image.new("L", (5, 3), 7).save(folder / "b" / "l.jpg")
    d = load_dataset(f"imagefolder:{folder}", val_size=1)
    x, _ = everything(d)
    assert d.input_shape == (1, 3, 5) and x.shape == (5, 1, 3, 5)  # H x W as the files, not squared
    assert sorted(int(img[0, 0, 0]) for img in x) == [0, 7, 100, 255, 255]
    assert load_dataset(f"imagefolder:{folder}", image_size=4, val_size=1).input_shape == (1, 4, 4)


def test_hidden_files_and_other_extensions_are_ignored(tmp_path):
    folder = tmp_path / "tidy"
    write_uniform(folder, per_class=5)
    for junk in ("cat/.DS_Store", "cat/notes.txt", "dog/._0.png", "dog/labels.csv", "README.md", "cat/.hidden.png"):
        (folder / junk).write_bytes(b"not an image")
    (folder / ".thumbnails" / "x").mkdir(parents=True)  # a hidden class folder is no class
    Image.new("RGB", (6, 6)).save(folder / ".thumbnails" / "x" / "t.png")
    (folder / "dog" / ".cache").mkdir()
    Image.new("RGB", (9, 9)).save(folder / "dog" / ".cache" / "big.png")  # would make sizes differ
    Image.new("RGB", (6, 6)).save(folder / "loose.png")  # not in a class folder
    d = load_dataset(f"imagefolder:{folder}", val_size=1)
    assert d.classes == ["cat", "dog"] and sum(d.sizes().values()) == 10


def test_images_in_nested_folders_belong_to_their_class(tmp_path):
    folder = tmp_path / "nested"
    write_uniform(folder, per_class=3)
    (folder / "dog" / "more" / "deeper").mkdir(parents=True)
    Image.new("RGB", (6, 6)).save(folder / "dog" / "more" / "deeper" / "x.png")
    _, y = everything(load_dataset(f"imagefolder:{folder}", val_size=1))
    assert torch.bincount(y).tolist() == [3, 4]


# --- hostile and broken folders ---------------------------------------------------------------------
def huge_png(path, width=30000, height=30000):
    """A valid PNG header claiming a 900-megapixel image (a decompression bomb), no pixel data."""
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
                     + chunk(b"IEND", b""))


def test_unreadable_images_are_one_line_naming_the_first(tmp_path):
    folder = tmp_path / "broken"
    write_uniform(folder)
    good = (folder / "cat" / "0.png").read_bytes()
    (folder / "cat" / "1.png").write_bytes(b"")  # empty
    (folder / "cat" / "2.png").write_bytes(good[: len(good) // 2])  # truncated
    (folder / "dog" / "0.png").write_text("<html>not found</html>")  # a web page saved as .png
    with pytest.raises(DatasetError) as err:
        load_dataset(f"imagefolder:{folder}")
    msg = one_line(err)
    assert f"cannot read image {folder / 'cat' / '1.png'}" in msg and "and 1 more of the 12 images" in msg
    assert "fix or remove" in msg and str(folder / "dog" / "0.png") not in msg  # one line: the first only
    (folder / "cat" / "1.png").write_bytes(good)
    (folder / "dog" / "0.png").write_bytes(good)
    with pytest.raises(DatasetError) as err:  # its header is fine: found when its pixels are decoded
        load_dataset(f"imagefolder:{folder}")
    assert f"cannot decode image {folder / 'cat' / '2.png'}" in one_line(err) and "more" not in str(err.value)


@pytest.mark.parametrize("hostile", ["bomb", "fifo", "dangling link"])
def test_hostile_files_are_refused_without_hanging(tmp_path, hostile):
    folder = tmp_path / "hostile"
    write_uniform(folder)
    target = folder / "dog" / "z.png"
    if hostile == "bomb":
        huge_png(target)
    elif hostile == "fifo":
        if not hasattr(os, "mkfifo"):
            pytest.skip("no FIFOs on this system")
        os.mkfifo(target)  # opening it to read would block for ever
    else:
        target.symlink_to(tmp_path / "gone.png")
    with pytest.raises(DatasetError) as err:
        load_dataset(f"imagefolder:{folder}")
    assert str(target) in one_line(err)


def test_too_few_classes_and_empty_classes_are_refused(tmp_path):
    one = tmp_path / "one"
    write_uniform(one, classes=("cat",))
    with pytest.raises(DatasetError) as err:
        load_dataset(f"imagefolder:{one}")
    assert "at least two class folders" in one_line(err) and "'cat'" in str(err.value)
    empty = tmp_path / "empty"
    write_uniform(empty)
    (empty / "emu").mkdir()
    (empty / "emu" / "readme.txt").write_text("photos to come")
    with pytest.raises(DatasetError) as err:
        load_dataset(f"imagefolder:{empty}")
    assert str(empty / "emu") in one_line(err) and "holds no images" in str(err.value)
    split = tmp_path / "split"
    write_uniform(split / "train")
    write_uniform(split / "test", classes=("cat", "cow"))
    with pytest.raises(DatasetError, match="class folders differ"):
        load_dataset(f"imagefolder:{split}")


def test_an_unreadable_sub_folder_is_refused_not_left_out(tmp_path, monkeypatch):
    folder = tmp_path / "locked"
    write_uniform(folder)
    (folder / "dog" / "private").mkdir()
    Image.new("RGB", (6, 6)).save(folder / "dog" / "private" / "x.png")
    real_scandir = os.scandir

    def scandir(path="."):  # what chmod 000 does to anyone but root
        if str(path).endswith("private"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    with pytest.raises(DatasetError) as err:
        load_dataset(f"imagefolder:{folder}")
    assert str(folder / "dog" / "private") in one_line(err) and "Permission denied" in str(err.value)


def test_symlink_loops_count_each_file_once(tmp_path):
    folder = tmp_path / "loops"
    write_uniform(folder)  # 12 images
    (folder / "cat" / "self").symlink_to(folder / "cat", target_is_directory=True)
    (folder / "dog" / "up").symlink_to(folder, target_is_directory=True)
    (folder / "dog" / "cats").symlink_to(folder / "cat", target_is_directory=True)
    (folder / "again").symlink_to(folder, target_is_directory=True)  # top level: the folder itself
    (folder / "cat" / "root").symlink_to("/", target_is_directory=True)
    d = load_dataset(f"imagefolder:{folder}", val_size=2)
    _, y = everything(d)
    assert d.classes == ["cat", "dog"] and torch.bincount(y).tolist() == [6, 6]
    # A class folder that links elsewhere is read (once); one file under two names counts once.
    outside = tmp_path / "elsewhere"
    write_uniform(outside, classes=("birds",), per_class=3)
    (folder / "bird").symlink_to(outside / "birds", target_is_directory=True)
    (folder / "bird" / "copy.png").symlink_to(outside / "birds" / "0.png")
    d = load_dataset(f"imagefolder:{folder}", val_size=2)
    _, y = everything(d)
    assert d.classes == ["bird", "cat", "dog"] and torch.bincount(y).tolist() == [3, 6, 6]
    (folder / "birdie").symlink_to(outside / "birds", target_is_directory=True)
    with pytest.raises(DatasetError) as err:
        load_dataset(f"imagefolder:{folder}")
    assert "'bird' and 'birdie'" in one_line(err) and "same directory" in str(err.value)


def test_train_and_test_folders_with_mixed_sizes(tmp_path):
    write_uniform(tmp_path / "set" / "train", per_class=4, size=(6, 6))
    write_uniform(tmp_path / "set" / "test", per_class=2, size=(9, 4), mode="L")  # grey, other size
    with pytest.raises(DatasetError, match="differ in size"):
        load_dataset(f"imagefolder:{tmp_path / 'set'}")
    d = load_dataset(f"imagefolder:{tmp_path / 'set'}", image_size=5, val_size=2)
    assert d.input_shape == (3, 5, 5) and d.sizes() == {"train": 6, "val": 2, "test": 4}  # RGB: train is colour


# --- the cache --------------------------------------------------------------------------------------
def test_second_load_comes_from_the_cache(tmp_path, cache, decodes):
    folder = tmp_path / "mixed"
    write_mixed(folder)
    first = load_dataset(f"imagefolder:{folder}", image_size=8, val_size=2)
    assert decodes["n"] == 12
    files = list((cache / "imagefolder").iterdir())
    assert len(files) == 1 and files[0].suffix == ".npz"
    again = load_dataset(f"imagefolder:{folder}", image_size=8, val_size=2)
    assert decodes["n"] == 12  # nothing decoded
    for a, b in zip(everything(first), everything(again)):
        assert torch.equal(a, b)
    other_split = load_dataset(f"imagefolder:{folder}", image_size=8, val_size=3, split_seed=5)
    assert decodes["n"] == 12 and len(other_split.val_y) == 3  # splits are carved after the cache
    with np.load(files[0], allow_pickle=False) as saved:  # plain arrays, no pickled objects
        assert set(saved.files) == {"key", "x0", "y0"} and saved["x0"].shape == (12, 3, 8, 8)


def test_a_changed_file_or_image_size_decodes_again(tmp_path, cache, decodes):
    folder = tmp_path / "uniform"
    write_uniform(folder)
    before = load_dataset(f"imagefolder:{folder}", val_size=1)
    assert decodes["n"] == 12
    Image.new("RGB", (6, 6), (1, 2, 3)).save(folder / "dog" / "3.png")
    os.utime(folder / "dog" / "3.png", ns=(1, 1_000_000_000))  # a new time even on coarse clocks
    after = load_dataset(f"imagefolder:{folder}", val_size=1)
    assert decodes["n"] == 24
    assert not torch.equal(everything(before)[0], everything(after)[0])
    assert any(bool((img == torch.tensor([1, 2, 3]).view(3, 1, 1)).all()) for img in everything(after)[0])
    load_dataset(f"imagefolder:{folder}", val_size=1, image_size=4)
    assert decodes["n"] == 36
    (folder / "dog" / "3.png").rename(folder / "dog" / "renamed.png")
    load_dataset(f"imagefolder:{folder}", val_size=1)
    assert decodes["n"] == 48
    assert len(list((cache / "imagefolder").glob("*.npz"))) == 4


def test_a_damaged_cache_file_is_rebuilt(tmp_path, cache, decodes):
    folder = tmp_path / "uniform"
    write_uniform(folder)
    first = load_dataset(f"imagefolder:{folder}", val_size=1)
    (cached,) = (cache / "imagefolder").glob("*.npz")
    cached.write_bytes(cached.read_bytes()[:100])
    again = load_dataset(f"imagefolder:{folder}", val_size=1)
    assert decodes["n"] == 24 and torch.equal(everything(first)[0], everything(again)[0])
    load_dataset(f"imagefolder:{folder}", val_size=1)
    assert decodes["n"] == 24  # rewritten whole


def test_a_killed_cache_write_leaves_no_cache(tmp_path, cache, decodes, monkeypatch):
    folder = tmp_path / "uniform"
    write_uniform(folder)

    def killed(file, **arrays):
        file.write(b"PK\x03\x04 half a zip")
        raise KeyboardInterrupt  # stands for the process dying mid-write

    monkeypatch.setattr(reader.np, "savez", killed)
    with pytest.raises(KeyboardInterrupt):
        load_dataset(f"imagefolder:{folder}", val_size=1)
    monkeypatch.undo()
    monkeypatch.setenv("ALIFE_NAS_CACHE", str(cache))
    assert list((cache / "imagefolder").iterdir()) == []  # neither a cache file nor a temp file
    load_dataset(f"imagefolder:{folder}", val_size=1)
    assert len(list((cache / "imagefolder").glob("*.npz"))) == 1


def test_an_unwritable_or_disabled_cache_still_loads(tmp_path, monkeypatch):
    folder = tmp_path / "uniform"
    write_uniform(folder)
    blocker = tmp_path / "a-file"
    blocker.write_text("the cache directory cannot be created under a file")
    monkeypatch.setenv("ALIFE_NAS_CACHE", str(blocker / "cache"))
    assert sum(load_dataset(f"imagefolder:{folder}", val_size=1).sizes().values()) == 12
    monkeypatch.setenv("ALIFE_NAS_CACHE", "off")
    assert imagefolder_cache_dir() is None
    assert sum(load_dataset(f"imagefolder:{folder}", val_size=1).sizes().values()) == 12
    assert not (tmp_path / "off").exists()


def test_default_cache_directory(monkeypatch, tmp_path):
    monkeypatch.delenv("ALIFE_NAS_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert imagefolder_cache_dir() == tmp_path / "xdg" / "alife_nas"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert imagefolder_cache_dir() == tmp_path / "home" / ".cache" / "alife_nas"


# --- a real search and the command line ---------------------------------------------------------------
def test_a_real_search_on_a_generated_mixed_folder(tmp_path):
    folder = tmp_path / "mixed"
    write_mixed(folder)
    config = SearchConfig.from_options(dataset=f"imagefolder:{folder}", image_size=8, lattice=2, steps=1,
                                       preset="fast", max_epochs=1, filters=[8, 16], device="cpu")
    with Search.create(tmp_path / "run", config) as search:
        summary = search.run()
    assert summary.trainings > 0 and 0.0 <= summary.best_fitness <= 1.0
    from alife_nas.store import RunStore

    with RunStore.open(tmp_path / "run") as store:
        info = store.dataset_info
        assert {k: info[k] for k in ("input_shape", "num_classes", "classes")} == {
            "input_shape": [3, 8, 8], "num_classes": 3, "classes": ["apple", "pear", "plum"]}
        assert info["sizes"] == search.data.sizes()  # what a run's training compute counts
        evaluations = store.evaluations()
        assert evaluations and all(e.epochs == 1 for e in evaluations if not e.failure)
        assert store.config.data.image_size == 8


def test_cli_evolve_on_an_image_folder(tmp_path):
    from click.testing import CliRunner

    from alife_nas.cli import main

    folder = tmp_path / "mixed"
    write_mixed(folder)
    tiny = ["--lattice", "2", "--steps", "1", "--filters", "8,16", "--max-epochs", "1", "--preset", "fast",
            "--device", "cpu", "--val-size", "2"]
    refused = CliRunner().invoke(main, ["evolve", "--out", str(tmp_path / "no"), "--dataset", f"imagefolder:{folder}", *tiny])
    assert refused.exit_code == 2 and "--image-size" in refused.output and "Traceback" not in refused.output
    assert len(refused.output.strip().splitlines()) == 1 and not (tmp_path / "no").exists()
    run = tmp_path / "run"
    result = CliRunner().invoke(main, ["evolve", "--out", str(run), "--dataset", f"imagefolder:{folder}",
                                       "--image-size", "8", *tiny])
    assert result.exit_code == 0, result.output
    status = json.loads(CliRunner().invoke(main, ["status", str(run), "--json"]).output)
    assert status["trainings"] > 0 and status["config"]["data"]["image_size"] == 8

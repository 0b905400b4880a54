"""Result files are written whole or not at all; environment errors are described in one line."""
import errno
import os

import pytest

from alife_nas.files import describe_os_error, write_atomically


def test_write_atomically_replaces_a_file_whole_with_the_usual_permissions(tmp_path) -> None:
    target = tmp_path / "a.png"
    target.write_bytes(b"old")
    assert write_atomically(target, lambda handle: handle.write(b"new picture")) == target
    assert target.read_bytes() == b"new picture" and os.listdir(tmp_path) == ["a.png"]
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask


@pytest.mark.parametrize("failure", [OSError(errno.ENOSPC, "No space left on device"), KeyboardInterrupt()])
def test_write_atomically_leaves_the_old_file_and_no_temporary_one_on_failure(tmp_path, failure) -> None:
    target = tmp_path / "a.png"
    target.write_bytes(b"old")

    def write(handle) -> None:
        handle.write(b"x" * 10_000)
        handle.flush()
        raise failure

    with pytest.raises(type(failure)) as caught:
        write_atomically(target, write)
    assert target.read_bytes() == b"old" and os.listdir(tmp_path) == ["a.png"]
    if isinstance(failure, OSError):  # named after the file the caller asked for, errno kept
        assert caught.value.filename == str(target) and caught.value.errno == errno.ENOSPC
    with pytest.raises(FileNotFoundError) as caught:
        write_atomically(tmp_path / "missing" / "b.png", write)
    assert caught.value.filename == str(tmp_path / "missing" / "b.png")


@pytest.mark.parametrize("code, says", [
    (errno.ENOSPC, "No space left on device; free some disk space or write to another folder"),
    (errno.EFBIG, "File too large; raise the file size limit (ulimit -f) or write to another folder"),
    (errno.EROFS, "Read-only file system; write to another folder, one you may write to"),
    (errno.EACCES, "Permission denied; write to another folder, one you may write to"),
    (errno.ENOTDIR, "Not a directory; write to another folder, one that exists or can be created"),
    (errno.EIO, "Input/output error; write to another folder"),
])
def test_describe_os_error_is_one_line_naming_the_file_and_what_to_do(code, says) -> None:
    message = describe_os_error(OSError(code, os.strerror(code), "pics/a.png"))
    assert message == f"cannot write pics/a.png: {says}"
    assert describe_os_error(OSError("odd\nfailure"), "elsewhere") == "cannot write a file: odd failure; write to elsewhere"


def test_write_atomically_replaces_a_link_not_its_target(tmp_path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    (tmp_path / "link.txt").symlink_to(victim)
    write_atomically(tmp_path / "link.txt", "new")
    assert victim.read_text() == "keep me" and (tmp_path / "link.txt").read_text() == "new"
    assert not (tmp_path / "link.txt").is_symlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.txt", "victim.txt"]  # no temporary left
    write_atomically(tmp_path / "b.bin", b"\x00\x01")
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01"



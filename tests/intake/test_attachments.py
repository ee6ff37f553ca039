"""The attachment store: files written under a temporary name then renamed, and
BackgroundSync, which flushes a batch's files while the batch's statements run, so the
batch may commit only once every one of them is on disk."""

from __future__ import annotations

import hashlib
import itertools
import os
import threading
from pathlib import Path

import pytest

from intake import attachments as attachments_module
from intake.attachments import AttachmentStore, BackgroundSync, MissingAttachment


@pytest.fixture
def store(tmp_path: Path) -> AttachmentStore:
    return AttachmentStore(tmp_path / "att")


def flushed_names(
    monkeypatch: pytest.MonkeyPatch,
    gate: threading.Event | None = None,
    threads: set[int] | None = None,
) -> list[str]:
    names: list[str] = []
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        if gate is not None:
            assert gate.wait(10), "the flush never saw the body run"
        if threads is not None:
            threads.add(threading.get_ident())
        real_fsync(fd)
        names.append(os.readlink(f"/proc/self/fd/{fd}").rsplit("/", 1)[-1])

    monkeypatch.setattr(attachments_module.os, "fsync", recording_fsync)
    return names


def test_files_are_flushed_while_the_body_runs(
    store: AttachmentStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    body_ran = threading.Event()
    threads: set[int] = set()
    names = flushed_names(monkeypatch, gate=body_ran, threads=threads)
    files = [store.save_sync(f"f{i}".encode(), "f.txt", "text/plain") for i in range(3)]
    sync = BackgroundSync(store)
    digests = [f.sha256 for f in files] + [files[0].sha256]  # a file named twice: once
    with sync.around(digests):
        # The flushes wait for this line: were they run before the body or after it,
        # instead of beside it, they would never see it.
        assert names == []
        body_ran.set()
    assert sorted(names) == sorted(f.sha256 for f in files)  # all done on leaving
    # One thread flushes the batch, none of them on the body's thread: a thread woken per
    # file would take the interpreter lock from the statements that many more times.
    assert len(threads) == 1 and threading.get_ident() not in threads
    sync.close()


def test_a_missing_file_is_skipped_by_the_flush_and_named_by_missing(
    store: AttachmentStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The intake batch refuses messages naming missing files itself (``missing``), so the
    background flush only flushes what is there; a plain ``sync`` still refuses."""
    names = flushed_names(monkeypatch)
    present = store.save_sync(b"here", "a.txt", "text/plain")
    sync = BackgroundSync(store)
    with sync.around([present.sha256, "0" * 64]):
        pass
    assert names == [present.sha256]
    assert store.missing([present.sha256, "0" * 64]) == {"0" * 64}
    with pytest.raises(MissingAttachment, match="not in the store"):
        store.sync(["0" * 64])
    sync.close()


def test_the_body_error_wins(store: AttachmentStore, monkeypatch: pytest.MonkeyPatch) -> None:
    flushed_names(monkeypatch)
    sync = BackgroundSync(store)
    with pytest.raises(KeyError), sync.around(["0" * 64]):
        raise KeyError("statement failed")
    sync.close()


def test_files_land_under_their_content_name_only(
    store: AttachmentStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(attachments_module, "_temp_numbers", itertools.count())
    first = store.save_sync(b"uno", "a.txt", "text/plain")  # its folder does not exist yet
    folder = store.path_of(first.sha256).parent
    assert [p.name for p in folder.iterdir()] == [first.sha256]
    assert store.path_of(first.sha256).read_bytes() == b"uno"
    # A leftover temporary file of an earlier process with this pid is neither reused
    # nor removed.
    data = b"tres" * 1000
    folder = store.path_of(hashlib.sha256(data).hexdigest()).parent
    folder.mkdir(parents=True)
    leftover = folder / f".incoming-{os.getpid()}-1"
    leftover.write_bytes(b"partial")
    third = store.save_sync(data, "c.txt", "text/plain")
    assert store.path_of(third.sha256).read_bytes() == data
    assert leftover.read_bytes() == b"partial"
    assert sorted(p.name for p in folder.iterdir()) == sorted([leftover.name, third.sha256])
    again = store.save_sync(b"uno", "otro.txt", "text/plain")  # same content: same file
    assert again.sha256 == first.sha256 and again.filename == "otro.txt"

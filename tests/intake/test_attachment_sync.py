"""BackgroundSync: a batch's attachment files are flushed while the batch's statements run,
and the batch may commit only once every one of them is on disk."""

from __future__ import annotations

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
    monkeypatch: pytest.MonkeyPatch, gate: threading.Event | None = None
) -> list[str]:
    names: list[str] = []
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        if gate is not None:
            assert gate.wait(10), "the flush never saw the body run"
        real_fsync(fd)
        names.append(os.readlink(f"/proc/self/fd/{fd}").rsplit("/", 1)[-1])

    monkeypatch.setattr(attachments_module.os, "fsync", recording_fsync)
    return names


def test_files_are_flushed_while_the_body_runs(
    store: AttachmentStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    body_ran = threading.Event()
    names = flushed_names(monkeypatch, gate=body_ran)
    files = [store.save_sync(f"f{i}".encode(), "f.txt", "text/plain") for i in range(3)]
    sync = BackgroundSync(store)
    digests = [f.sha256 for f in files] + [files[0].sha256]  # a file named twice: once
    with sync.around(digests):
        # The flushes wait for this line: were they run before the body or after it,
        # instead of beside it, they would never see it.
        assert names == []
        body_ran.set()
    assert sorted(names) == sorted(f.sha256 for f in files)  # all done on leaving
    sync.close()


def test_a_missing_file_fails_on_leaving(
    store: AttachmentStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    names = flushed_names(monkeypatch)
    present = store.save_sync(b"here", "a.txt", "text/plain")
    sync = BackgroundSync(store)
    body_done = False
    with (
        pytest.raises(MissingAttachment, match="not in the store"),
        sync.around([present.sha256, "0" * 64]),
    ):
        body_done = True
    assert body_done and names == [present.sha256]
    sync.close()


def test_the_body_error_wins(store: AttachmentStore, monkeypatch: pytest.MonkeyPatch) -> None:
    flushed_names(monkeypatch)
    sync = BackgroundSync(store)
    with pytest.raises(KeyError), sync.around(["0" * 64]):
        raise KeyError("statement failed")
    sync.close()

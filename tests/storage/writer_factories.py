"""Writing functions for the writer-process tests: built inside the child, by module name."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from sqlalchemy.engine import Connection


def insert_note() -> Callable[..., Any]:
    """``write(text)`` inserts a note and returns (the child's pid, notes stored so far)."""

    def write(conn: Connection, note: str) -> tuple[int, int]:
        conn.exec_driver_sql("INSERT INTO notes (text) VALUES (?)", (note,))
        count = conn.exec_driver_sql("SELECT count(*) FROM notes").scalar_one()
        return os.getpid(), int(count)

    return write


def unpicklable_result() -> Callable[..., Any]:
    def write(conn: Connection) -> Any:
        return lambda: None  # a result that cannot cross the pipe

    return write


def broken_factory() -> Callable[..., Any]:
    raise ValueError("no writer today")


class Unrebuildable(Exception):
    """Pickles fine, but its constructor needs two arguments, so unpickling it fails."""

    def __init__(self, code: int, text: str) -> None:
        super().__init__(f"{code} {text}")


def raises_unrebuildable() -> Callable[..., Any]:
    def write(conn: Connection) -> Any:
        raise Unrebuildable(7, "seven")

    return write

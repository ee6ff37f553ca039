"""Run ``storage.migrate`` in a short-lived child process and wait for it.

The daemon migrates SQLite at start-up; doing it in a child keeps Alembic (about 12 MB
once imported) out of the long-running process. The child's error output becomes the
exception's message.
"""

from __future__ import annotations

import asyncio
import os
import sys


class MigrationFailed(RuntimeError):
    """The migration child exited non-zero; the message is its error output."""


async def upgrade_in_child(url: str, revision: str = "head") -> None:
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "storage.migrate",
        revision,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        # The URL may carry a password: passed in the environment, not on the command line.
        env={**os.environ, "VENTANILLA_MIGRATE_URL": url},
    )
    _, err = await child.communicate()
    if child.returncode != 0:
        # The traceback's last unindented line is the exception; SQLAlchemy adds a
        # "(Background on this error …)" line after it.
        lines = [
            line
            for line in err.decode(errors="replace").splitlines()
            if line.strip() and not line[0].isspace() and not line.startswith("(")
        ]
        raise MigrationFailed(lines[-1] if lines else f"migration exited {child.returncode}")

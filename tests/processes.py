"""Child processes for the multi-process tests.

They are forked from a server process that has imported convstore and its drivers once,
so each starts in milliseconds instead of the second a new interpreter needs, and is
still a process of its own (its own connections, locks and file descriptors).
"""

from __future__ import annotations

import multiprocessing

PROCESSES = multiprocessing.get_context("forkserver")
PROCESSES.set_forkserver_preload(
    [
        "convstore",
        "convstore.backends.sql.backend",
        "convstore.backends.sql.postgres",
        "convstore.backends.files.backend",
        "psycopg",
        "tests.test_concurrency",
        "tests.test_files_backend",
    ]
)

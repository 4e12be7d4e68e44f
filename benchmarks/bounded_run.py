"""subprocess.run with a timeout that also stops the command's children (`rank --workers N` starts
N workers): the command gets its own process group, and the whole group is killed when time is up,
so no orphan keeps a lent GPU busy or the output pipes open."""

from __future__ import annotations

import os
import signal
import subprocess


def run_bounded(command: list[str], timeout: float | None, **kwargs) -> subprocess.CompletedProcess:
    """Like subprocess.run(command, capture_output=True, text=True, timeout=timeout, **kwargs)."""
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          start_new_session=True, **kwargs) as process:
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            raise
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)

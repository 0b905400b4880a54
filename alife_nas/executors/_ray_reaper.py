"""Stops every process of a Ray instance that alife-nas started, when its coordinator is gone.

Ray ties its head processes (GCS, raylet) to the driver that started them, but not all of theirs:
after a SIGKILL of the driver, Ray's dashboard and runtime-env agents outlive it (by a minute or
more). So the coordinator starts this watchdog — a separate session, standard library only, run
by path so it imports nothing of alife_nas — *before* it starts Ray, and starts Ray with a token
in its environment (``ALIFE_NAS_RAY_INSTANCE``), which the processes Ray starts inherit.

While the coordinator lives, the watchdog looks every :data:`POLL` seconds at the coordinator's
children that carry the token (Ray's head processes) and notes them and all their descendants —
the agents and workers — with their start times. It waits for a line on its stdin: ``stop`` when
the run ends (after ``ray.shutdown``), end-of-file when the coordinator died (the system closes
its end of the pipe); it also notices when its parent changes. Then it kills (SIGKILL) every
noted process that is still the same process, their descendants, and any process whose
environment holds the token (a worker born after the last look), until none is left, and exits.
Ray's agents rename themselves over their environment, which is why the token alone is not
enough. A Ray cluster the user started is never a child of the coordinator and never carries the
token, so it is never touched; nor is any other child of the coordinator.

Processes are read from ``/proc`` (Linux) or, elsewhere, with psutil when it is installed; with
neither, the watchdog only waits, and Ray's own clean-up is all there is.

Usage: ``python _ray_reaper.py TOKEN COORDINATOR_PID``.
"""
from __future__ import annotations

import os
import select
import signal
import sys
import time
from typing import Dict, Optional, Tuple

MARK = "ALIFE_NAS_RAY_INSTANCE"
#: Seconds between two looks at the coordinator's Ray processes.
POLL = 1.0
#: How long a sweep goes on killing newcomers (a raylet may start a worker while it dies).
SWEEP_SECONDS = 20.0

Table = Dict[int, Tuple[int, str]]  # pid -> (parent pid, start time: tells a reused pid apart)


def _psutil():
    try:
        import psutil
    except ImportError:
        return None
    return psutil


_PROC = os.path.isdir("/proc/self")


def table() -> Table:
    """Every process now: its parent and its start time."""
    processes: Table = {}
    if _PROC:
        for name in os.listdir("/proc"):
            if name.isdigit():
                try:
                    with open(f"/proc/{name}/stat", "rb") as file:
                        fields = file.read().rsplit(b")", 1)[1].split()
                    processes[int(name)] = (int(fields[1]), fields[19].decode())
                except (OSError, ValueError, IndexError):
                    continue
        return processes
    psutil = _psutil()
    if psutil is not None:
        for process in psutil.process_iter(["ppid", "create_time"]):
            info = process.info
            if info.get("ppid") is not None:
                processes[process.pid] = (info["ppid"], str(info.get("create_time")))
    return processes


def carries(pid: int, token: str) -> bool:
    """Whether the process's environment holds the token (unreadable: another user's, or gone)."""
    entry = f"{MARK}={token}"
    if _PROC:
        try:
            with open(f"/proc/{pid}/environ", "rb") as file:
                return entry.encode() in file.read().split(b"\0")
        except OSError:
            return False
    psutil = _psutil()
    if psutil is None:
        return False
    try:
        return psutil.Process(pid).environ().get(MARK) == token
    except (psutil.Error, OSError):
        return False


def below(processes: Table, roots: set) -> set:
    """The processes under ``roots`` (not the roots themselves)."""
    children: Dict[int, list] = {}
    for pid, (ppid, _) in processes.items():
        children.setdefault(ppid, []).append(pid)
    found, todo = set(), list(roots)
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


class Instance:
    """The processes of one Ray instance, as far as they have been seen."""

    def __init__(self, token: str, coordinator: int) -> None:
        self.token = token
        self.coordinator = coordinator
        self.known: Dict[int, str] = {}  # pid -> start time
        self._checked: Dict[int, Tuple[str, bool]] = {}  # a child of the coordinator -> (start, carries)

    def look(self) -> None:
        """Note the coordinator's token-carrying children and everything under them."""
        processes = table()
        roots = set()
        for pid, (ppid, start) in processes.items():
            if ppid == self.coordinator and pid != os.getpid():
                checked = self._checked.get(pid)
                if checked is None or checked[0] != start:
                    checked = self._checked[pid] = (start, carries(pid, self.token))
                if checked[1]:
                    roots.add(pid)
        for pid in roots | below(processes, roots):
            self.known[pid] = processes[pid][1]

    def targets(self) -> set:
        """What to kill now: the noted processes still alive as themselves, what is under them,
        and whatever carries the token."""
        processes = table()
        alive = {pid for pid, start in self.known.items() if pid in processes and processes[pid][1] == start}
        marked = {pid for pid in processes if pid != os.getpid() and carries(pid, self.token)}
        return (alive | below(processes, alive) | marked) - {os.getpid()}

    def sweep(self, seconds: float = SWEEP_SECONDS) -> int:
        """Kill the targets until two looks in a row find none; how many were killed."""
        killed: set = set()
        deadline = time.monotonic() + seconds
        quiet = 0
        while quiet < 2 and time.monotonic() < deadline:
            pids = self.targets() - killed  # a killed process may linger a moment as a zombie
            quiet = 0 if pids else quiet + 1
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                    killed.add(pid)
                except OSError:
                    pass
            time.sleep(0.1)
        return len(killed)


def wait_for_end(instance: Optional[Instance], parent: int) -> None:
    """Note the instance's processes until stdin says ``stop`` or ends (the coordinator is gone),
    or this process's parent changes."""
    stdin = sys.stdin.buffer
    if os.name == "nt":  # no select() on pipes: end-of-file is enough there
        stdin.readline()
        return
    while os.getppid() == parent:
        if instance is not None:
            instance.look()
        readable, _, _ = select.select([stdin], [], [], POLL)
        if readable:
            stdin.readline()  # "stop", or b"" at end-of-file: either way, the instance ends
            return


def main(argv: list) -> int:
    token, parent = argv[1], int(argv[2])
    for name in ("SIGINT", "SIGHUP", "SIGTERM"):  # Ctrl-C, a closed terminal: the coordinator decides
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), signal.SIG_IGN)
    instance = Instance(token, parent) if (_PROC or _psutil() is not None) else None
    wait_for_end(instance, parent)
    if instance is not None:
        instance.sweep()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

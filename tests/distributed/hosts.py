"""Hosts on a network of their own, for running a master and its workers as separate machines would.

Each host is a Linux network namespace with one interface, `eth0`, whose veth cable plugs into a
bridge (the switch) that lives in a namespace of its own; nothing is added to the machine's own
network, and the addresses (192.0.2.0/24, TEST-NET-1, which no real host ever has) are reachable from
these namespaces only. A process runs "on" a host through `ip netns exec`, with the host's name as its
hostname (its own UTS namespace) and, in a mount namespace of its own, the other hosts' folders
hidden under empty tmpfs mounts: what one host writes, another cannot read, as on separate machines.
Only the installed library (the virtualenv) is shared, as it would be installed on every machine.

Creating namespaces needs root and iproute2; `unavailable()` says why they cannot be had, for a skip.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from compliance_loadtest.backend import parent_death_signal

SUBNET_PREFIX = "192.0.2"
PREFIX_LENGTH = 24

# Runs as the host: its hostname, the other hosts' folders hidden, then the command in place of the shell.
_ON_HOST = (
    'hostname "$1" || exit 97; shift; '
    'while [ "$1" != -- ]; do mount -t tmpfs -o size=1m,mode=0700 hidden "$1" || exit 98; shift; done; '
    'shift; exec "$@"'
)


def unavailable() -> str | None:
    """Why network namespaces cannot be made here (None: they can)."""
    if not sys.platform.startswith("linux"):
        return "network namespaces are Linux only"
    if os.geteuid() != 0:
        return "creating network namespaces needs root"
    missing = [tool for tool in ("ip", "unshare", "mount", "sh") if shutil.which(tool) is None]
    if missing:
        return f"missing tools: {', '.join(missing)} (Debian: iproute2, util-linux, mount)"
    probe = f"cltprobe{os.getpid()}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        return f"`ip netns add` failed: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


@dataclass(frozen=True)
class Host:
    """One machine of the network."""

    name: str
    """Its hostname; Locust names a worker `<hostname>_<random hex>`."""
    namespace: str
    address: str
    home: Path
    """Its own folder: working directory of its processes, invisible to the other hosts."""
    cable: str
    """Its cable's end at the switch (an interface of the switch's namespace)."""


class Network:
    """Hosts joined by one switch. `up()` builds it, `down()` removes every namespace it made."""

    def __init__(self, root: Path, hosts: Mapping[str, int]) -> None:
        """`hosts`: host name -> last byte of its address."""
        tag = f"cltd{os.getpid()}"
        self.switch = f"{tag}-switch"
        self.hosts: dict[str, Host] = {
            name: Host(
                name=name,
                namespace=f"{tag}-{name}",
                address=f"{SUBNET_PREFIX}.{last}",
                home=root / name,
                cable=f"c{i}",
            )
            for i, (name, last) in enumerate(hosts.items())
        }
        self._made: list[str] = []

    def __getitem__(self, name: str) -> Host:
        return self.hosts[name]

    def up(self) -> None:
        remove_leftovers()
        self._netns_add(self.switch)
        self._ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
        self._ip("-n", self.switch, "link", "set", "br0", "up")
        for host in self.hosts.values():
            host.home.mkdir(parents=True, exist_ok=True)
            self._netns_add(host.namespace)
            self._ip("-n", self.switch, "link", "add", host.cable, "type", "veth", "peer", "name", "eth0",
                     "netns", host.namespace)  # fmt: skip
            self._ip("-n", self.switch, "link", "set", host.cable, "master", "br0", "up")
            self._ip("-n", host.namespace, "addr", "add", f"{host.address}/{PREFIX_LENGTH}", "dev", "eth0")
            self._ip("-n", host.namespace, "link", "set", "eth0", "up")
            self._ip("-n", host.namespace, "link", "set", "lo", "up")

    def down(self) -> None:
        """Remove the namespaces (their interfaces go with them). Their processes must have ended."""
        for namespace in reversed(self._made):
            subprocess.run(["ip", "netns", "del", namespace], capture_output=True)
        self._made.clear()

    def unplug(self, name: str) -> None:
        """Pull the host's cable out of the switch: its link goes down, nothing reaches it or leaves it."""
        self._ip("-n", self.switch, "link", "set", self.hosts[name].cable, "down")

    def plug(self, name: str) -> None:
        self._ip("-n", self.switch, "link", "set", self.hosts[name].cable, "up")

    def start(
        self, name: str, argv: Sequence[str], log: Path, env: Mapping[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        """Start `argv` on the host, output into `log`; the Popen's pid is the command's own."""
        host = self.hosts[name]
        hidden = [str(h.home) for h in self.hosts.values() if h.name != name]
        command = [
            *("ip", "netns", "exec", host.namespace),
            *("unshare", "--uts", "--mount", "--propagation", "private"),
            *("sh", "-c", _ON_HOST, "on-host", host.name, *hidden, "--", *argv),
        ]
        with log.open("wb") as out:
            return subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=host.home,
                env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
                # Kept through ip's, unshare's and sh's exec: nothing outlives a test process killed hard.
                preexec_fn=parent_death_signal(),
            )

    def _netns_add(self, namespace: str) -> None:
        self._ip("netns", "add", namespace)
        self._made.append(namespace)

    @staticmethod
    def _ip(*args: str) -> None:
        done = subprocess.run(["ip", *args], capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")


def remove_leftovers() -> None:
    """Remove the namespaces of test processes that died without removing theirs (killed hard)."""
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    for name in re.findall(r"^(cltd(\d+)-\S+)", listed, re.M):
        namespace, pid = name
        if not Path(f"/proc/{pid}").exists():
            subprocess.run(["ip", "netns", "del", namespace], capture_output=True)


def stop(process: subprocess.Popen[bytes], grace: float = 5.0) -> int:
    """SIGTERM, then SIGKILL after `grace` seconds; its exit code (negative: the signal that ended it)."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            process.kill()
    return process.wait()


def wait_for_file(path: Path, timeout: float, process: subprocess.Popen[bytes], log: Path) -> None:
    """Wait until `path` exists; fail with the process's log if it ends first or time runs out."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        if process.poll() is not None:
            raise AssertionError(f"exited with {process.returncode} before writing {path}:\n{read(log)}")
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} not written within {timeout:.0f} s:\n{read(log)}")
        time.sleep(0.1)


def read(log: Path) -> str:
    return log.read_text(errors="replace") if log.exists() else "(no log)"

"""Starting, finding and stopping the devnet's ledger processes.

Each ledger runs detached (its own session, so closing the terminal or stopping the CLI
leaves it running), logs into its data directory and is remembered in ``devnet.json``
with its pid, so ``status``, ``down``, ``mine`` and the node configs all find it again.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import time
from pathlib import Path

import msgspec

from .. import plugins
from .role import DevnetChain, DevnetRole


class DevnetError(Exception):
    """Something the operator must fix; the message says what."""


class LedgerProcess(msgspec.Struct):
    name: str  # the chain's name in node configs: evm, evm-2, bitcoin, solana
    backend: str
    index: int
    url: str
    pid: int
    datadir: str
    provisioned: DevnetChain | None = None


class DevnetState(msgspec.Struct):
    ledgers: list[LedgerProcess] = msgspec.field(default_factory=list)
    nodes: list[str] = msgspec.field(default_factory=list)


def state_path(root: Path) -> Path:
    return root / "devnet.json"


def load_state(root: Path) -> DevnetState:
    path = state_path(root)
    if not path.exists():
        return DevnetState()
    return msgspec.json.decode(path.read_bytes(), type=DevnetState)


def save_state(root: Path, state: DevnetState) -> None:
    root.mkdir(parents=True, exist_ok=True)
    tmp = state_path(root).with_suffix(".tmp")
    tmp.write_bytes(msgspec.json.format(msgspec.json.encode(state), indent=1))
    os.replace(tmp, state_path(root))


def role_of(backend: str) -> DevnetRole:
    factory = plugins.backend(backend)
    if not isinstance(factory, DevnetRole):
        raise DevnetError(f"the {backend} backend has no devnet ledger (no devnet_* methods)")
    return factory


def devnet_backends() -> list[str]:
    """Installed backends that can run a devnet ledger, in plugin order."""
    return [f.info.name for f in plugins.installed_backends() if isinstance(f, DevnetRole)]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (our own child that exited) is not alive.
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.split(")", 1)[1].split()[0] != "Z"
    return True


#: Ports handed out by this process: never the same one twice before it is bound.
_HANDED_OUT: set[int] = set()
#: The lowest port ``free_port`` picks outside the kernel's ephemeral range.
FIXED_PORTS_FROM = 10_000


def _ephemeral_range() -> tuple[int, int] | None:
    """The kernel's range for outgoing connections' ports (Linux), if readable."""
    with contextlib.suppress(OSError, ValueError):
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    return None


def free_port(host: str = "127.0.0.1") -> int:
    """A port free now, for a server started next. Picked outside the kernel's ephemeral
    range where there is room: a port from that range (what binding port 0 gives) can be
    handed to an outgoing connection before the server binds it, and the server then
    fails with "Address already in use" (the tests' node processes did)."""
    span = _ephemeral_range()
    if span is not None and span[0] - FIXED_PORTS_FROM >= 1_000:
        for _ in range(100):
            port = random.randrange(FIXED_PORTS_FROM, span[0])
            if port in _HANDED_OUT:
                continue
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                try:
                    s.bind((host, port))
                except OSError:
                    continue  # in use: another
            _HANDED_OUT.add(port)
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        port = int(s.getsockname()[1])
    _HANDED_OUT.add(port)
    return port


def start(
    root: Path,
    name: str,
    backend: str,
    index: int,
    *,
    host: str = "127.0.0.1",
    port: int | None = None,
    block_time: float = 1.0,
    timeout: float = 60.0,
) -> LedgerProcess:
    """Start one ledger process and wait until it answers."""
    role = role_of(backend)
    datadir = root / "ledgers" / name
    datadir.mkdir(parents=True, exist_ok=True)
    port = port or free_port(host)
    argv = role.devnet_command(str(datadir), host, port, block_time, index)
    log = (datadir / "ledger.log").open("ab")
    try:
        proc = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd=datadir,
        )
    except OSError as exc:
        raise DevnetError(f"cannot start the {name} ledger ({argv[0]}): {exc}") from None
    finally:
        log.close()
    url = f"http://{host}:{port}"
    deadline = time.monotonic() + timeout
    while not role.devnet_ready(url):
        if proc.poll() is not None:
            raise DevnetError(
                f"the {name} ledger exited with status {proc.returncode}:\n{_tail(datadir)}"
            )
        if time.monotonic() > deadline:
            stop_pid(proc.pid)
            raise DevnetError(f"the {name} ledger did not answer on {url} in {timeout:.0f} s")
        time.sleep(0.1)
    return LedgerProcess(name, backend, index, url, proc.pid, str(datadir))


def stop_pid(pid: int, grace: float = 10.0) -> None:
    """SIGTERM the ledger's process group, then SIGKILL what is left after ``grace``."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while alive(pid) and time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.05)
    if alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)


def _tail(datadir: Path, lines: int = 20) -> str:
    try:
        text = (datadir / "ledger.log").read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])

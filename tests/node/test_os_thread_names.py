"""``name_os_thread``: the name the operating system shows for a thread of the node."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest

from chenilles_hub.node.runtime.threads import name_os_thread

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc is Linux's")


def _named_in_a_thread(name: str) -> str:
    seen: list[str] = []

    def body() -> None:
        name_os_thread(name)
        comm = Path(f"/proc/self/task/{threading.get_native_id()}/comm")
        seen.append(comm.read_text().strip())

    thread = threading.Thread(target=body)
    thread.start()
    thread.join()
    return seen[0]


def test_a_thread_gets_its_name_and_the_rest_of_the_process_keeps_theirs() -> None:
    main_before = Path(f"/proc/self/task/{threading.get_native_id()}/comm").read_text()
    assert _named_in_a_thread("writer") == "writer"
    assert Path(f"/proc/self/task/{threading.get_native_id()}/comm").read_text() == main_before


def test_a_long_name_keeps_its_first_15_bytes_as_linux_allows() -> None:
    assert _named_in_a_thread("chain-fetch-bitcoin") == "chain-fetch-bit"


def test_a_name_is_never_cut_inside_a_character() -> None:
    """A chain may be named in any script: 15 bytes may end inside a character, and the
    name is then cut before it (``/proc`` stays readable as UTF-8)."""
    assert _named_in_a_thread("chain-fetch-eté") == "chain-fetch-et"

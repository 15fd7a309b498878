"""The registry-only Solana toolchain: Debian clang -target bpf + chenilles_solana.sbf_linker.

Proves syscalls and relocations on small programs run in LiteSVM, and that the committed
artifacts are what a fresh build produces.
"""

from __future__ import annotations

import hashlib
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from chenilles_solana import sbf_linker
from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.litesvm import LiteSVM
from solders.message import Message
from solders.pubkey import Pubkey
from solders.transaction import Transaction

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.solana

BUILD = ROOT / "contracts" / "solana" / "build"
CLANG = shutil.which("clang-14") or shutil.which("clang")
needs_clang = pytest.mark.skipif(CLANG is None, reason="clang (apt: clang-14) not installed")


def run(so: bytes, data: bytes):
    svm = LiteSVM()
    pid = Pubkey.new_unique()
    svm.add_program(pid, so)
    payer = Keypair()
    svm.airdrop(payer.pubkey(), 10**9)
    tx = Transaction(
        [payer], Message([Instruction(pid, data, [])], payer.pubkey()), svm.latest_blockhash()
    )
    return svm.send_transaction(tx)


def compile_c(tmp_path: Path, source: str) -> bytes:
    src = tmp_path / "t.c"
    src.write_text(source)
    obj = tmp_path / "t.o"
    subprocess.run(
        [
            CLANG,
            "-target",
            "bpf",
            "-mcpu=v1",
            "-O2",
            "-ffreestanding",
            "-fno-builtin",
            "-I",
            str(ROOT / "contracts" / "solana"),
            "-c",
            str(src),
            "-o",
            str(obj),
        ],
        check=True,
    )
    return obj.read_bytes()


def test_hello_program_calls_syscalls():
    so = (BUILD / "hello_syscalls.so").read_bytes()
    assert sbf_linker.syscalls_of(so) == ["sol_log_", "sol_log_64_", "sol_sha256"]
    res = run(so, b"abc")
    logs = res.logs()
    assert "Program log: chenilles: hello from clang-built SBPF" in logs
    first8 = struct.unpack("<Q", hashlib.sha256(b"abc").digest()[:8])[0]
    assert f"Program log: {first8:#x}, 0x3, 0x0, 0x0, 0x0" in logs
    res = run(so, b"\xff")
    assert res.err().err.code == 42


@needs_clang
def test_rodata_pointer_table_relocations(tmp_path):
    """Pointers stored in .rodata (R_BPF_64_ABS64 -> R_BPF_64_RELATIVE, SBPF v0 encoding)."""
    obj = compile_c(
        tmp_path,
        r"""
#include "sol_abi.h"
static const char A_[] = "alpha-string";
static const char B_[] = "bravo-string";
static const char *const TABLE[2] = {A_, B_};
u64 entrypoint(u8 *input) {
    AccountInfo infos[1]; Input in;
    deserialize(input, infos, 1, &in);
    if (in.data_len != 1 || in.data[0] > 1) return 7;
    sol_log_(TABLE[in.data[0]], 12);
    return 0;
}
""",
    )
    so = sbf_linker.link(obj)
    assert "Program log: alpha-string" in run(so, b"\x00").logs()
    assert "Program log: bravo-string" in run(so, b"\x01").logs()


@needs_clang
def test_linker_rejects_writable_globals(tmp_path):
    obj = compile_c(
        tmp_path,
        "unsigned long counter;\nunsigned long entrypoint(void *in) { return counter++; }\n",
    )
    with pytest.raises(sbf_linker.LinkError, match="writable section"):
        sbf_linker.link(obj)


@needs_clang
def test_link_is_deterministic(tmp_path):
    src = (ROOT / "contracts" / "solana" / "hello_syscalls.c").read_text()
    obj = compile_c(tmp_path, src)
    assert sbf_linker.link(obj) == sbf_linker.link(obj)


@needs_clang
def test_artifacts_match_fresh_build():
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "build_solana_program.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr

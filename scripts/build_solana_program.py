#!/usr/bin/env python3
"""Build the Solana programs in contracts/solana/ from source, reproducibly.

Each ``contracts/solana/<name>.c`` is one program (one translation unit, headers beside it):

    clang -target bpf -mcpu=v1 -O2 ... -c <name>.c -o build/<name>.o
    chenilles_solana.sbf_linker: build/<name>.o -> build/<name>.so   (SBPF v0 shared object)

and ``build/build_info.json`` records the compiler, flags, and each program's sha256.
Every program is built twice and the two outputs must be byte-identical.

Apps (``apps/<app>/``, each its own distribution) are built the same way:
``apps/<app>/contracts/solana/<name>.c`` -> ``apps/<app>/<package>/build/<name>.so`` (the
program ships inside the app's one Python package), with ``contracts/solana`` on the
include path for ``sol_abi.h`` and the app ABI ``chenilles_app.h``.

Needs only Debian's clang (``apt-get install -y clang-14``; ld.lld is *not* used) and
pyelftools (``pip install pyelftools``). ``--check`` rebuilds in a temporary directory and
fails if the result differs from the committed artifacts (for CI).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "contracts" / "solana"
OUT = SRC / "build"
sys.path.insert(0, str(ROOT / "backends" / "solana"))

CLANG_CANDIDATES = ("clang-14", "clang")
CFLAGS = [
    "-target",
    "bpf",
    "-mcpu=v1",
    "-O2",
    "-std=c11",
    "-ffreestanding",
    "-fno-builtin",
    "-fno-stack-protector",
    "-fno-unwind-tables",
    "-fno-asynchronous-unwind-tables",
    "-fno-ident",
    "-Wall",
    "-Werror",
]
APT_HINT = (
    "clang with the BPF target is required: on Debian 12 run\n"
    "    apt-get update && apt-get install -y clang-14\n"
    "(ld.lld is not needed; llvm-14 is optional, for llvm-objdump-14)."
)


def find_clang() -> str:
    override = os.environ.get("CHENILLES_CLANG")
    for cand in (override,) if override else CLANG_CANDIDATES:
        path = shutil.which(cand)
        if not path:
            continue
        targets = subprocess.run([path, "-print-targets"], capture_output=True, text=True)
        if " bpf " in targets.stdout or "bpfel" in targets.stdout:
            return path
    sys.exit(f"error: no clang with the BPF target found.\n{APT_HINT}")


def clang_version(clang: str) -> str:
    return (
        subprocess.run([clang, "--version"], capture_output=True, text=True, check=True)
        .stdout.splitlines()[0]
        .strip()
    )


def compile_and_link(clang: str, source: Path, workdir: Path) -> bytes:
    from chenilles_solana.sbf_linker import link

    obj = workdir / (source.stem + ".o")
    # Run from the source directory with a relative file name (and a relative include
    # path): the object then carries no absolute paths, so the output does not depend on
    # where the tree is checked out.
    include = ["-I", os.path.relpath(SRC, source.parent)] if source.parent != SRC else []
    proc = subprocess.run(
        [clang, *CFLAGS, *include, "-c", source.name, "-o", str(obj)], cwd=source.parent
    )
    if proc.returncode != 0:
        sys.exit(f"error: clang failed on {source.name} (exit {proc.returncode})")
    return link(obj.read_bytes())


def app_units() -> list[tuple[Path, Path]]:
    """(source directory, committed build directory) of every app with a Solana program."""
    units = []
    for app in sorted((ROOT / "apps").glob("*/contracts/solana")):
        home = app.parent.parent
        packages = [d for d in sorted(home.iterdir()) if (d / "__init__.py").exists()]
        if len(packages) != 1:
            sys.exit(f"error: {home.relative_to(ROOT)}: expected one Python package, {packages}")
        units.append((app, packages[0] / "build"))
    return units


def build(out_dir: Path, src: Path = SRC, committed: Path = OUT) -> dict:
    clang = find_clang()
    info = {
        "compiler": clang_version(clang),
        "cflags": CFLAGS,
        "linker": "chenilles_solana.sbf_linker (SBPF v0)",
        "programs": {},
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    sources = sorted(src.glob("*.c"))
    if not sources:
        sys.exit(f"error: no sources in {src}")
    for source in sources:
        with tempfile.TemporaryDirectory() as t1, tempfile.TemporaryDirectory() as t2:
            first = compile_and_link(clang, source, Path(t1))
            second = compile_and_link(clang, source, Path(t2))
        if first != second:
            sys.exit(f"error: {source.name}: two builds differ (non-deterministic build)")
        so_path = out_dir / (source.stem + ".so")
        so_path.write_bytes(first)
        from chenilles_solana.sbf_linker import syscalls_of

        info["programs"][source.stem] = {
            "source": str(source.relative_to(ROOT)),
            "artifact": str((committed / so_path.name).relative_to(ROOT)),
            "size": len(first),
            "sha256": hashlib.sha256(first).hexdigest(),
            "syscalls": syscalls_of(first),
        }
        print(
            f"built {so_path.name}: {len(first)} bytes sha256 "
            f"{info['programs'][source.stem]['sha256']}"
        )
    (out_dir / "build_info.json").write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
    return info


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--check",
        action="store_true",
        help="rebuild in a temp dir and compare with contracts/solana/build",
    )
    args = ap.parse_args()
    units = [(SRC, OUT), *app_units()]
    if not args.check:
        for src, out in units:
            build(out, src, out)
        return 0
    bad = []
    for src, out in units:
        with tempfile.TemporaryDirectory() as tmp:
            fresh = build(Path(tmp), src, out)
            for name, prog in fresh["programs"].items():
                committed = out / (name + ".so")
                if (
                    not committed.exists()
                    or hashlib.sha256(committed.read_bytes()).hexdigest() != prog["sha256"]
                ):
                    bad.append(name)
    if bad:
        print(f"error: artifacts differ from a fresh build: {', '.join(bad)}", file=sys.stderr)
        return 1
    print("artifacts match a fresh build")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

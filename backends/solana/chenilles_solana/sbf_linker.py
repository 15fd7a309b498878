"""A small linker: one clang ``-target bpf`` relocatable object -> a Solana SBPF v0 program.

Why it exists: Debian's ld.lld (14, 16) cannot link calls to external symbols for BPF
(``unknown relocation (10)``) nor take the address of local data in a ``-shared`` link, and
the Solana platform-tools are not available from the package registries. The object file
clang writes is fine; only the final step (the shared object layout Solana's loader expects)
is missing. This module does that step and nothing else.

What Solana's ELF loader (solana-sbpf, "lenient" parser used for SBPF v0, ``e_flags == 0``)
reads, and therefore what we write:

* ELF64, little endian, ``ET_DYN``, ``EM_BPF`` (247), OS ABI 0, ``e_flags`` 0.
* Section headers are authoritative. Exactly one ``.text``; read-only data in ``.rodata``.
  Each loaded section has ``sh_addr == sh_offset`` (the loader rejects anything else) and
  the VM sees it at ``0x1_0000_0000 + sh_addr``. Sections are in ascending file order and
  do not overlap the headers. No writable ``.data``/``.bss`` (the loader rejects them).
* Program headers (PT_LOAD per region, PT_DYNAMIC) as a conventional linker would write.
* ``.dynamic`` gives ``DT_REL``/``DT_RELSZ``/``DT_RELENT`` (-> ``.rel.dyn``) and
  ``DT_SYMTAB`` (the loader finds ``.dynsym`` by ``sh_addr``); ``.dynstr`` by name.
* Relocations the loader applies (``Elf64_Rel``, no addend):
    - ``R_BPF_64_32`` (10) on a ``call`` whose imm is -1, naming an *undefined* dynamic
      symbol: a syscall. The loader writes murmur3_32(name) into the imm and checks the
      name is a registered syscall (e.g. ``sol_log_``).
    - ``R_BPF_64_RELATIVE`` (8) on an ``lddw`` in ``.text``: the loader reads the 64-bit
      value split over the two imm fields and adds ``0x1_0000_0000`` when it is below that.
      We store the section-relative virtual address (== file offset) there.
    - ``R_BPF_64_RELATIVE`` on an 8-byte pointer inside ``.rodata`` (SBPF v0 legacy
      encoding): the loader reads the u32 at ``r_offset + 4`` and writes
      ``0x1_0000_0000 + value`` as a u64 at ``r_offset``.
* Calls between our own functions are plain pc-relative ``call imm`` (imm != -1); the
  loader registers every such target itself. We resolve them here and emit nothing.

Input: clang-14 ``-target bpf -mcpu=v1 -O2 -fno-builtin -ffreestanding`` object (one
translation unit). Input relocations understood: ``R_BPF_64_64`` (1, lddw of a symbol
address, implicit 32-bit addend in the first imm), ``R_BPF_64_ABS64`` (2, data pointer in
.rodata), ``R_BPF_64_32`` (10, call). Everything else is an error, loudly.

The output is a pure function of the input bytes (deterministic).
"""

from __future__ import annotations

import io
import struct
import sys
from dataclasses import dataclass, field
from typing import Any

from elftools.elf.elffile import ELFFile

EM_BPF = 247
ET_REL = 1
ET_DYN = 3

R_BPF_64_64 = 1
R_BPF_64_ABS64 = 2
R_BPF_64_RELATIVE = 8
R_BPF_64_32 = 10

MM_PROGRAM_START = 0x1_0000_0000

SHT_NULL, SHT_PROGBITS, SHT_SYMTAB, SHT_STRTAB = 0, 1, 2, 3
SHT_DYNAMIC, SHT_NOBITS, SHT_REL, SHT_DYNSYM = 6, 8, 9, 11
SHF_WRITE, SHF_ALLOC, SHF_EXECINSTR = 1, 2, 4
PT_LOAD, PT_DYNAMIC = 1, 2
PF_X, PF_W, PF_R = 1, 2, 4
DT_NULL, DT_STRTAB, DT_SYMTAB, DT_STRSZ, DT_SYMENT = 0, 5, 6, 10, 11
DT_REL, DT_RELSZ, DT_RELENT, DT_TEXTREL, DT_FLAGS, DT_RELCOUNT = 17, 18, 19, 22, 30, 0x6FFFFFFA
STB_GLOBAL, STT_NOTYPE, STT_FUNC = 1, 0, 2

CALL_IMM = 0x85
LDDW = 0x18


class LinkError(Exception):
    """The object cannot be turned into a Solana program; the message says why."""


def _align(n: int, a: int) -> int:
    return (n + a - 1) // a * a


@dataclass
class _StrTab:
    data: bytearray = field(default_factory=lambda: bytearray(b"\0"))
    index: dict[str, int] = field(default_factory=dict)

    def add(self, name: str) -> int:
        if name not in self.index:
            self.index[name] = len(self.data)
            self.data += name.encode() + b"\0"
        return self.index[name]


def link(obj: bytes, entry: str = "entrypoint") -> bytes:
    """Link one BPF relocatable object into an SBPF v0 shared object and return its bytes."""
    elf = ELFFile(io.BytesIO(obj))
    if elf.header["e_machine"] != "EM_BPF" or elf.header["e_type"] != "ET_REL":
        raise LinkError("input must be a relocatable object for EM_BPF (clang -target bpf -c)")
    if elf.elfclass != 64 or not elf.little_endian:
        raise LinkError("input must be ELF64 little endian")

    sections = list(elf.iter_sections())
    text_idx = None
    rodata_idx: list[int] = []
    for i, s in enumerate(sections):
        name, flags, size = s.name, s["sh_flags"], s["sh_size"]
        if not flags & SHF_ALLOC or size == 0:
            continue
        if name == ".text":
            text_idx = i
        elif flags & SHF_EXECINSTR:
            raise LinkError(f"unexpected code section {name}: compile without -ffunction-sections")
        elif flags & SHF_WRITE or s["sh_type"] == "SHT_NOBITS":
            raise LinkError(
                f"writable section {name} ({size} bytes): Solana programs have no mutable "
                "globals; make the data const or keep it on the stack/heap"
            )
        elif name.startswith(".rodata"):
            rodata_idx.append(i)
        else:
            raise LinkError(f"unsupported allocated section {name}")
    if text_idx is None:
        raise LinkError("no .text section")

    # ---- layout -----------------------------------------------------------------------
    n_phdrs = 4
    off = 64 + 56 * n_phdrs
    text_off = off = _align(off, 8)
    text = bytearray(sections[text_idx].data())
    off += len(text)
    # Merge all .rodata* input sections into one output .rodata.
    rodata = bytearray()
    rodata_off = off = _align(off, 8)
    sec_base: dict[int, int] = {text_idx: text_off}
    for i in rodata_idx:
        s = sections[i]
        pad = _align(len(rodata), max(1, s["sh_addralign"])) - len(rodata)
        rodata += b"\0" * pad
        sec_base[i] = rodata_off + len(rodata)
        rodata += s.data()
    off += len(rodata)

    # ---- symbols ------------------------------------------------------------------------
    symtab: Any = elf.get_section_by_name(".symtab")
    if symtab is None:
        raise LinkError("input has no .symtab")
    syms = list(symtab.iter_symbols())

    def sym_addr(sym: Any) -> int | None:
        shndx = sym["st_shndx"]
        if shndx == "SHN_UNDEF":
            return None
        if not isinstance(shndx, int) or shndx not in sec_base:
            raise LinkError(f"symbol {sym.name!r} lives in a section we do not load ({shndx})")
        return int(sec_base[shndx] + sym["st_value"])

    entry_sym = next((s for s in syms if s.name == entry), None)
    if entry_sym is None or sym_addr(entry_sym) is None:
        raise LinkError(f"entry symbol {entry!r} is not defined")
    entry_addr = sym_addr(entry_sym)

    dynstr = _StrTab()
    dynsyms: list[tuple[int, int, int, int, int]] = []  # name, info, shndx, value, size
    dynsym_index: dict[str, int] = {}
    dyn_rels: list[tuple[int, int, int]] = []  # offset, type, sym index

    def syscall_symbol(name: str) -> int:
        if name not in dynsym_index:
            dynsym_index[name] = len(dynsyms) + 1
            dynsyms.append((dynstr.add(name), (STB_GLOBAL << 4) | STT_NOTYPE, 0, 0, 0))
        return dynsym_index[name]

    # ---- apply relocations ------------------------------------------------------------
    out_data = {text_idx: text}
    rodata_views = {i: (sec_base[i] - rodata_off) for i in rodata_idx}
    rsec: Any
    for rsec in sections:
        if rsec["sh_type"] == "SHT_RELA":
            raise LinkError(
                f"RELA relocations ({rsec.name}) are not expected from clang -target bpf"
            )
        if rsec["sh_type"] != "SHT_REL":
            continue
        target = rsec["sh_info"]
        if target == text_idx:
            buf, base, in_text = text, 0, True
        elif target in rodata_views:
            buf, base, in_text = rodata, rodata_views[target], False
        else:
            tname = sections[target].name
            if sections[target]["sh_flags"] & SHF_ALLOC:
                raise LinkError(f"relocations against {tname} are not supported")
            continue  # debug info and the like: not loaded
        for rel in rsec.iter_relocations():
            r_off, r_type = rel["r_offset"], rel["r_info_type"]
            sym = syms[rel["r_info_sym"]]
            p = base + r_off  # offset inside buf
            vaddr_here = sec_base[target] + r_off  # == file offset in the output
            if r_type == R_BPF_64_32 and in_text:
                if text[p] != CALL_IMM:
                    raise LinkError(f"R_BPF_64_32 at .text+{r_off:#x} is not on a call")
                dest = sym_addr(sym)
                if dest is None:
                    struct.pack_into("<i", text, p + 4, -1)
                    text[p + 1] &= 0x0F  # src = 0: an external (syscall) call
                    dyn_rels.append((vaddr_here, R_BPF_64_32, syscall_symbol(sym.name)))
                else:
                    if sym["st_info"]["type"] == "STT_SECTION":
                        raise LinkError("call through a section symbol is not supported")
                    rel_insns = (dest - (vaddr_here + 8)) // 8
                    if (dest - text_off) % 8 or not (text_off <= dest < text_off + len(text)):
                        raise LinkError(f"call target {sym.name} outside .text")
                    struct.pack_into("<i", text, p + 4, rel_insns)
            elif r_type == R_BPF_64_64 and in_text:
                if text[p] != LDDW:
                    raise LinkError(f"R_BPF_64_64 at .text+{r_off:#x} is not on lddw")
                dest = sym_addr(sym)
                if dest is None:
                    raise LinkError(f"address of undefined symbol {sym.name!r}")
                addend = struct.unpack_from("<i", text, p + 4)[0]
                value = dest + addend
                struct.pack_into("<I", text, p + 4, value & 0xFFFFFFFF)
                struct.pack_into("<I", text, p + 12, value >> 32)
                dyn_rels.append((vaddr_here, R_BPF_64_RELATIVE, 0))
            elif r_type == R_BPF_64_ABS64 and not in_text:
                dest = sym_addr(sym)
                if dest is None:
                    raise LinkError(f"pointer to undefined symbol {sym.name!r}")
                addend = struct.unpack_from("<q", buf, p)[0]
                value = dest + addend
                # SBPF v0 legacy encoding read by the loader: u32 at +4.
                struct.pack_into("<II", buf, p, 0, value)
                dyn_rels.append((vaddr_here, R_BPF_64_RELATIVE, 0))
            else:
                raise LinkError(
                    f"unsupported relocation type {r_type} at {sections[target].name}+{r_off:#x}"
                    f" (symbol {sym.name!r})"
                )
    del out_data

    dyn_rels.sort()

    # ---- dynamic tables ---------------------------------------------------------------
    dynamic_off = off = _align(off, 8)
    dyn_entries_count = 9 if dyn_rels else 5
    dynamic_size = 16 * dyn_entries_count
    off += dynamic_size
    dynsym_off = off = _align(off, 8)
    dynsym = bytearray(24)  # index 0: the null symbol
    for name_off, info, shndx, value, size in dynsyms:
        dynsym += struct.pack("<IBBHQQ", name_off, info, 0, shndx, value, size)
    off += len(dynsym)
    dynstr_off = off
    off += len(dynstr.data)
    reldyn_off = off = _align(off, 8)
    reldyn = b"".join(struct.pack("<QQ", o, (s << 32) | t) for o, t, s in dyn_rels)
    off += len(reldyn)
    load2_end = off

    dynamic = bytearray()
    if dyn_rels:
        dynamic += struct.pack("<qQ", DT_REL, reldyn_off)
        dynamic += struct.pack("<qQ", DT_RELSZ, len(reldyn))
        dynamic += struct.pack("<qQ", DT_RELENT, 16)
        dynamic += struct.pack(
            "<qQ", DT_RELCOUNT, sum(1 for _, t, _ in dyn_rels if t == R_BPF_64_RELATIVE)
        )
    dynamic += struct.pack("<qQ", DT_SYMTAB, dynsym_off)
    dynamic += struct.pack("<qQ", DT_SYMENT, 24)
    dynamic += struct.pack("<qQ", DT_STRTAB, dynstr_off)
    dynamic += struct.pack("<qQ", DT_STRSZ, len(dynstr.data))
    dynamic += struct.pack("<qQ", DT_NULL, 0)
    assert len(dynamic) == dynamic_size

    shstr = _StrTab()
    names = [".text", ".rodata", ".dynamic", ".dynsym", ".dynstr", ".rel.dyn", ".shstrtab"]
    for n in names:
        shstr.add(n)
    shstrtab_off = off
    off += len(shstr.data)
    shoff = off = _align(off, 8)

    # ---- section headers --------------------------------------------------------------
    shdrs = [struct.pack("<IIQQQQIIQQ", 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)]

    def shdr(
        name: str,
        typ: int,
        flags: int,
        addr: int,
        offset: int,
        size: int,
        link: int = 0,
        info: int = 0,
        align: int = 1,
        entsize: int = 0,
    ) -> int:
        shdrs.append(
            struct.pack(
                "<IIQQQQIIQQ",
                shstr.add(name),
                typ,
                flags,
                addr,
                offset,
                size,
                link,
                info,
                align,
                entsize,
            )
        )
        return len(shdrs) - 1

    shdr(".text", SHT_PROGBITS, SHF_ALLOC | SHF_EXECINSTR, text_off, text_off, len(text), align=8)
    if rodata:
        shdr(".rodata", SHT_PROGBITS, SHF_ALLOC, rodata_off, rodata_off, len(rodata), align=8)
    dynstr_index = len(shdrs) + 2
    shdr(
        ".dynamic",
        SHT_DYNAMIC,
        SHF_ALLOC | SHF_WRITE,
        dynamic_off,
        dynamic_off,
        dynamic_size,
        link=dynstr_index,
        align=8,
        entsize=16,
    )
    dynsym_index_sh = shdr(
        ".dynsym",
        SHT_DYNSYM,
        SHF_ALLOC,
        dynsym_off,
        dynsym_off,
        len(dynsym),
        link=dynstr_index,
        info=1,
        align=8,
        entsize=24,
    )
    shdr(".dynstr", SHT_STRTAB, SHF_ALLOC, dynstr_off, dynstr_off, len(dynstr.data))
    if dyn_rels:
        shdr(
            ".rel.dyn",
            SHT_REL,
            SHF_ALLOC,
            reldyn_off,
            reldyn_off,
            len(reldyn),
            link=dynsym_index_sh,
            align=8,
            entsize=16,
        )
    shstrndx = shdr(".shstrtab", SHT_STRTAB, 0, 0, shstrtab_off, len(shstr.data))

    # ---- program headers --------------------------------------------------------------
    def phdr(typ: int, flags: int, offset: int, size: int, align: int) -> bytes:
        return struct.pack("<IIQQQQQQ", typ, flags, offset, offset, offset, size, size, align)

    ro_end = rodata_off + len(rodata) if rodata else text_off + len(text)
    phdrs = (
        phdr(PT_LOAD, PF_R | PF_X, text_off, len(text), 8)
        + phdr(PT_LOAD, PF_R, rodata_off, ro_end - rodata_off, 8)
        + phdr(PT_LOAD, PF_R, dynamic_off, load2_end - dynamic_off, 8)
        + phdr(PT_DYNAMIC, PF_R | PF_W, dynamic_off, dynamic_size, 8)
    )

    ehdr = struct.pack(
        "<16sHHIQQQIHHHHHH",
        b"\x7fELF\x02\x01\x01" + b"\0" * 9,
        ET_DYN,
        EM_BPF,
        1,
        entry_addr,
        64,
        shoff,
        0,
        64,
        56,
        n_phdrs,
        64,
        len(shdrs),
        shstrndx,
    )

    out = bytearray(shoff + 64 * len(shdrs))
    out[0:64] = ehdr
    out[64 : 64 + len(phdrs)] = phdrs
    out[text_off : text_off + len(text)] = text
    out[rodata_off : rodata_off + len(rodata)] = rodata
    out[dynamic_off : dynamic_off + dynamic_size] = dynamic
    out[dynsym_off : dynsym_off + len(dynsym)] = dynsym
    out[dynstr_off : dynstr_off + len(dynstr.data)] = dynstr.data
    out[reldyn_off : reldyn_off + len(reldyn)] = reldyn
    out[shstrtab_off : shstrtab_off + len(shstr.data)] = shstr.data
    out[shoff:] = b"".join(shdrs)
    return bytes(out)


def syscalls_of(so: bytes) -> list[str]:
    """Names of the syscalls a linked program imports (for reports and tests)."""
    elf = ELFFile(io.BytesIO(so))
    dynsym: Any = elf.get_section_by_name(".dynsym")
    return sorted({s.name for s in dynsym.iter_symbols() if s.name})


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        print("usage: python -m chenilles_solana.sbf_linker INPUT.o OUTPUT.so", file=sys.stderr)
        return 2
    with open(argv[0], "rb") as f:
        so = link(f.read())
    with open(argv[1], "wb") as f:
        f.write(so)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Flash and RAM of a model, read from linked Cortex-M ELF files with pyelftools.

The model's footprint is the model image minus the empty-harness image (same startup, same
harness without the model call, same flags), so startup code, vector table and libc set-up
cancel out. Flash counts what is stored in flash: code (vector table, .text, .ARM.exidx),
constant data (.rodata) and the load image of .data. RAM counts .data and .bss, plus the stack
high-water mark measured in the emulator; the linker's minimum-stack reserve is not counted.

Each symbol is traced to the source file that defined it (local symbols by the STT_FILE entry
that precedes them in the symbol table, global ones by the object file that defines them), so
the flash and RAM can be split into the model's weights and quantization data (constant objects
of ``<name>.c``), code, the activation arena (RAM objects of ``<name>.c``, or the harness's
arena when it holds the input and output: then the model's own static arena is unused and
dropped by the linker) and the harness's input/output buffers.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from elftools.elf.constants import SH_FLAGS
from elftools.elf.elffile import ELFFile

CODE_SECTIONS = (".isr_vector", ".text", ".ARM.exidx")
NOT_IMAGE = (".stack_reserve",)
HARNESS_IO = ("t2m_input", "t2m_output", "t2m_result")
HARNESS_ARENA = "t2m_arena"  # the arena that holds the input and output (harness T2M_IO_IN_ARENA)


@dataclass(frozen=True)
class Symbol:
    name: str
    size: int
    section: str  # output section: .text, .rodata, .data, .bss, ...
    origin: str   # defining source file, or "libc/libgcc"


@dataclass(frozen=True)
class Image:
    """Section sizes and sized symbols of one linked ELF."""

    code: int
    rodata: int
    data: int
    bss: int
    symbols: tuple[Symbol, ...]

    @property
    def flash(self) -> int:
        return self.code + self.rodata + self.data

    @property
    def ram(self) -> int:
        return self.data + self.bss


def _global_origins(objects: dict[str, Path]) -> dict[str, str]:
    """Global symbol name -> source file, from the object files."""
    origins = {}
    for source, obj in objects.items():
        with open(obj, "rb") as fh:
            symtab = ELFFile(fh).get_section_by_name(".symtab")
            for s in symtab.iter_symbols():
                if s["st_info"]["bind"] != "STB_LOCAL" and s["st_shndx"] != "SHN_UNDEF" and s.name:
                    origins[s.name] = source
    return origins


def read_image(elf_path: str | Path, objects: dict[str, Path] | None = None) -> Image:
    """Sizes of an ELF's code, constant data, initialised data and zeroed data, and its symbols."""
    sizes = {"code": 0, "rodata": 0, "data": 0, "bss": 0}
    origins = _global_origins(objects or {})
    symbols = []
    with open(elf_path, "rb") as fh:
        elf = ELFFile(fh)
        sections = list(elf.iter_sections())
        for sec in sections:
            if not sec["sh_flags"] & SH_FLAGS.SHF_ALLOC or sec.name in NOT_IMAGE:
                continue
            if sec.name in CODE_SECTIONS:
                sizes["code"] += sec["sh_size"]
            elif sec["sh_type"] == "SHT_NOBITS":
                sizes["bss"] += sec["sh_size"]
            elif sec["sh_flags"] & SH_FLAGS.SHF_WRITE:
                sizes["data"] += sec["sh_size"]
            else:
                sizes["rodata"] += sec["sh_size"]
        current_file = "?"
        for s in elf.get_section_by_name(".symtab").iter_symbols():
            kind = s["st_info"]["type"]
            if kind == "STT_FILE":
                current_file = s.name
                continue
            if kind not in ("STT_OBJECT", "STT_FUNC") or s["st_size"] == 0 or not isinstance(s["st_shndx"], int):
                continue
            section = sections[s["st_shndx"]].name
            if s["st_info"]["bind"] == "STB_LOCAL":
                origin = current_file
            else:
                origin = origins.get(s.name, "libc/libgcc")
            symbols.append(Symbol(s.name, s["st_size"], section, origin))
    return Image(**sizes, symbols=tuple(symbols))


def footprint(builds, stack_bytes: int) -> dict:
    """The model's flash and RAM on its target: model image minus empty-harness image.

    ``builds`` is a :class:`torch2mcu.targets.cortex_m.Builds` with ``empty`` set;
    ``stack_bytes`` the stack high-water mark of one model call, measured in the emulator.
    Returns bytes: flash, RAM (static + stack), and the split into weights, code, arena,
    input/output buffers, other; plus the largest symbols the model adds.
    """
    model_file = f"{builds.manifest['name']}.c"
    model = read_image(builds.model, builds.objects)
    empty = read_image(builds.empty, builds.objects)
    flash = model.flash - empty.flash
    static_ram = model.ram - empty.ram
    code = model.code - empty.code

    def total(pred) -> int:
        return sum(s.size for s in model.symbols if pred(s))

    weights = total(lambda s: s.origin == model_file and s.section == ".rodata")
    arena = total(lambda s: (s.origin == model_file and s.section in (".bss", ".data"))
                  or s.name == HARNESS_ARENA)
    io = total(lambda s: s.name in HARNESS_IO)
    empty_keys = {(s.name, s.origin) for s in empty.symbols}
    added = sorted((s for s in model.symbols if (s.name, s.origin) not in empty_keys),
                   key=lambda s: (-s.size, s.name))
    return {
        "flash_bytes": flash,
        "ram_bytes": static_ram + stack_bytes,
        "footprint_bytes": flash + static_ram + stack_bytes,
        "weights_bytes": weights,
        "code_bytes": code,
        "other_flash_bytes": flash - code - weights,
        "static_ram_bytes": static_ram,
        "arena_bytes": arena,
        "io_bytes": io,
        "io_in_arena": builds.io is not None,
        "other_ram_bytes": static_ram - arena - io,
        "largest_symbols": [
            {"name": s.name, "bytes": s.size, "section": s.section, "file": s.origin} for s in added[:10]
        ],
        "image": {
            "model": {"flash": model.flash, "ram": model.ram, "code": model.code, "rodata": model.rodata,
                      "data": model.data, "bss": model.bss},
            "empty": {"flash": empty.flash, "ram": empty.ram, "code": empty.code, "rodata": empty.rodata,
                      "data": empty.data, "bss": empty.bss},
        },
    }

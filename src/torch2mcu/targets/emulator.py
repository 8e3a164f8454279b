"""Run a torch2mcu Cortex-M ELF in unicorn: outputs, instruction counts, cycle estimates, stack.

The ELF's loadable segments are written into emulated flash and RAM, the startup code runs
from Reset_Handler up to main() (so .data and .bss are set up exactly as on the board), and
then the model function is called directly for each input (<name>_run: r0 = t2m_input,
r1 = t2m_output; with the input and output inside the harness's arena, <name>_run_with_arena:
r0..r3 = the arena, its size, the input and the output), lr = t2m_halt, sp = the top of RAM.
Emulation stops when the model returns to t2m_halt.

Counting. A basic-block hook keeps a histogram of the executed blocks (address and size, as
unicorn's translator cut them) and of how often each block was left by a taken branch rather
than by falling through. Afterwards each distinct block is decoded once with capstone, and the
instruction count is the sum of block sizes in instructions times their executions: exactly the
instructions executed from the model function's first instruction to its return, callees
(kernels, libgcc helpers) included, deterministic for a given image and input. Instructions
inside an IT block whose condition fails are counted (they occupy an issue slot on the core;
unicorn's per-instruction hook would skip them). Cycles are estimated the same way
(:mod:`torch2mcu.targets.cycles`), adding the taken-branch penalty of a block that ends in a
conditional branch each time it did not fall through. The histogram is kept by a small C
callback (``arm/host_blockcount.c``, compiled once with the host compiler; a few ns a block) or,
where that is unavailable, by a Python callback (about 3 us a block); both give identical counts.

Layer marks. In an image built with layer marks, the labels ``t2m_layer_mark_<i>`` sit where
layer i starts; a code hook on each label records (instructions, cycles) executed so far.

Stack. Before each call the free RAM between .bss and the stack top is painted with
0xC5C5C5C5; afterwards the lowest changed word gives the call's stack high-water mark.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import unicorn
from elftools.elf.elffile import ELFFile
from unicorn import arm_const as uc_arm

from .cortex_m import FitError, Target, get_target
from .cycles import Block, model_for

STACK_PAINT = 0xC5C5C5C5
PAGE = 0x1000
PPB_BASE, PPB_SIZE = 0xE000_0000, 0x10_0000  # system control space (CPACR lives here)
TIMEOUT_US = 600 * 1_000_000
MARK_PREFIX = "t2m_layer_mark_"
_SIZE_BITS = 16  # histogram key = address << _SIZE_BITS | block size (a block never spans a page)
_SIZE_MASK = (1 << _SIZE_BITS) - 1


def _page_round(n: int) -> int:
    return (n + PAGE - 1) // PAGE * PAGE


class PythonBlockCounter:
    """The block histogram of one call, kept by a Python UC_HOOK_BLOCK callback (~3 us a block).

    hits[key] counts executions of the block key = address << 16 | size; jumps[key] counts the
    times the next block was not its fall-through (its final branch was taken).
    """

    def __init__(self) -> None:
        self.hits: dict[int, int] = {}
        self.jumps: dict[int, int] = {}
        self.prev = -1
        self._hook = None

    def install(self, uc) -> None:
        hits, jumps = self.hits, self.jumps
        prev, prev_end = -1, -1

        def on_block(_uc, address, size, _user):
            nonlocal prev, prev_end
            if address != prev_end and prev >= 0:
                jumps[prev] = jumps.get(prev, 0) + 1
            key = (address << _SIZE_BITS) | size
            hits[key] = hits.get(key, 0) + 1
            prev = self.prev = key
            prev_end = address + size

        self._hook = uc.hook_add(unicorn.UC_HOOK_BLOCK, on_block)

    def remove(self, uc) -> None:
        uc.hook_del(self._hook)

    def snapshot(self):
        return dict(self.hits), dict(self.jumps), self.prev

    def histogram(self, snapshot=None) -> tuple[dict[int, int], dict[int, int], int]:
        """(hits, jumps, key of the block executing last), now or at a snapshot."""
        return snapshot if snapshot is not None else (self.hits, self.jumps, self.prev)


class _CounterState(ctypes.Structure):
    _fields_ = [(name, ctypes.c_uint64) for name in
                ("keys", "hits", "jumps", "mask", "used", "prev_slot", "prev_end", "overflow")]


class NativeBlockCounter:
    """The same histogram as :class:`PythonBlockCounter`, kept by the C callback in
    ``arm/host_blockcount.c`` (compiled once with the host C compiler): a few ns a block."""

    CAPACITY = 1 << 16

    def __init__(self) -> None:
        self.keys = np.zeros(self.CAPACITY, np.uint64)
        self.hits = np.zeros(self.CAPACITY, np.uint64)
        self.jumps = np.zeros(self.CAPACITY, np.uint64)
        self.state = _CounterState(self.keys.ctypes.data, self.hits.ctypes.data, self.jumps.ctypes.data,
                                   self.CAPACITY - 1, 0, self.CAPACITY, (1 << 64) - 1, 0)
        self._handle = None

    def install(self, uc) -> None:
        from unicorn.unicorn_py3.unicorn import uc_hook_h, uclib

        lib = _native_lib()
        self._handle = uc_hook_h()
        status = uclib.uc_hook_add(uc._uch, ctypes.byref(self._handle), unicorn.UC_HOOK_BLOCK,
                                   ctypes.cast(lib.t2m_count_block, ctypes.c_void_p),
                                   ctypes.cast(ctypes.pointer(self.state), ctypes.c_void_p),
                                   ctypes.c_uint64(1), ctypes.c_uint64(0))
        if status != unicorn.UC_ERR_OK:
            raise unicorn.UcError(status)

    def remove(self, uc) -> None:
        from unicorn.unicorn_py3.unicorn import uclib

        uclib.uc_hook_del(uc._uch, self._handle)
        if self.state.overflow:
            raise RuntimeError("more distinct code blocks than the native counter holds; "
                               "use Emulator(..., native=False)")

    def snapshot(self):
        return self.keys.copy(), self.hits.copy(), self.jumps.copy(), int(self.state.prev_slot)

    def histogram(self, snapshot=None) -> tuple[dict[int, int], dict[int, int], int]:
        keys, hits, jumps, prev_slot = snapshot if snapshot is not None else self.snapshot()
        used = np.flatnonzero(keys)
        k = keys[used].tolist()
        current = int(keys[prev_slot]) if prev_slot < self.CAPACITY else -1
        return (dict(zip(k, hits[used].tolist())),
                {key: j for key, j in zip(k, jumps[used].tolist()) if j}, current)


@functools.lru_cache(maxsize=None)
def _native_lib():
    """Compile (once per source version, cached in $TORCH2MCU_CACHE or ~/.cache/torch2mcu) and load the C hook."""
    src = Path(__file__).parent / "arm" / "host_blockcount.c"
    code = src.read_bytes()
    digest = hashlib.sha256(code + platform.machine().encode() + platform.system().encode()).hexdigest()[:16]
    cache = Path(os.environ.get("TORCH2MCU_CACHE", Path.home() / ".cache" / "torch2mcu"))
    lib = cache / f"host_blockcount-{digest}.so"
    if not lib.is_file():
        cc = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
        if cc is None:
            raise RuntimeError("no host C compiler for the native block counter")
        cache.mkdir(parents=True, exist_ok=True)
        tmp = lib.with_suffix(f".{os.getpid()}.tmp")
        subprocess.run([cc, "-O2", "-shared", "-fPIC", "-o", str(tmp), str(src)], check=True, capture_output=True)
        os.replace(tmp, lib)
    return ctypes.CDLL(str(lib))


def native_counting_available() -> bool:
    """Whether the C block counter can be used (host compiler, unicorn's ctypes binding)."""
    try:
        _native_lib()
        from unicorn.unicorn_py3.unicorn import uc_hook_h, uclib  # noqa: F401
    except Exception:  # noqa: BLE001 - any failure means: count in Python instead
        return False
    return True


@dataclass
class CallResult:
    """One call of a function in the emulator."""

    return_value: int
    instructions: int = 0
    cycles: int = 0
    stack_bytes: int = 0
    marks: dict[int, tuple[int, int]] = field(default_factory=dict)  # mark -> (instructions, cycles) before it


@dataclass
class ModelRun:
    """A batch of model calls; counts and stack are those of the first input."""

    outputs: np.ndarray
    instructions: int
    cycles: int
    stack_bytes: int
    marks: dict[int, tuple[int, int]]
    cycle_model: str


class Emulator:
    """One ELF loaded into an emulated Cortex-M, reset and ready for calls."""

    def __init__(self, elf_path: str | Path, target: str | Target, native: bool | None = None):
        """``native``: count with the C block hook (default: when it is available) or in Python;
        both give identical counts."""
        self.target = get_target(target)
        self.native = native_counting_available() if native is None else native
        self.elf_path = Path(elf_path)
        self.cycle_model = model_for(self.target.core)
        self._blocks: dict[tuple[int, int], Block] = {}
        with open(self.elf_path, "rb") as fh:
            elf = ELFFile(fh)
            self.symbols = {
                s.name: s for s in elf.get_section_by_name(".symtab").iter_symbols() if s.name
            }
            segments = [
                (seg["p_paddr"], seg.data()) for seg in elf.iter_segments()
                if seg["p_type"] == "PT_LOAD" and seg["p_filesz"] > 0
            ]
        self.uc = unicorn.Uc(unicorn.UC_ARCH_ARM, unicorn.UC_MODE_THUMB | unicorn.UC_MODE_MCLASS)
        self.uc.ctl_set_cpu_model(getattr(uc_arm, self.target.unicorn_cpu))
        t = self.target
        self.uc.mem_map(t.flash_origin, _page_round(t.flash_bytes), unicorn.UC_PROT_READ | unicorn.UC_PROT_EXEC)
        self.uc.mem_map(t.ram_origin, _page_round(t.ram_bytes), unicorn.UC_PROT_ALL)
        self.uc.mem_map(PPB_BASE, PPB_SIZE, unicorn.UC_PROT_READ | unicorn.UC_PROT_WRITE)
        for addr, data in segments:
            self.uc.mem_write(addr, data)
        self.stack_top = self.address("__stack_top")
        self.stack_limit = self.address("__stack_limit")
        self.halt = self.address("t2m_halt")
        self.marks = {
            int(n[len(MARK_PREFIX):]): s["st_value"] & ~1
            for n, s in self.symbols.items() if n.startswith(MARK_PREFIX)
        }
        self._reset()

    # -- symbols and memory ------------------------------------------------------------------

    def address(self, name: str) -> int:
        try:
            return self.symbols[name]["st_value"] & ~1
        except KeyError:
            raise KeyError(f"{self.elf_path.name}: no symbol {name!r}") from None

    def read(self, name: str, nbytes: int | None = None) -> bytes:
        sym = self.symbols[name]
        return bytes(self.uc.mem_read(sym["st_value"], nbytes if nbytes is not None else sym["st_size"]))

    def write(self, name: str, data: bytes) -> None:
        sym = self.symbols[name]
        if len(data) > sym["st_size"]:
            raise ValueError(f"{len(data)} bytes do not fit {name} ({sym['st_size']} bytes)")
        self.uc.mem_write(sym["st_value"], data)

    # -- execution ---------------------------------------------------------------------------

    def _start(self, begin: int, until: int) -> None:
        try:
            self.uc.emu_start(begin | 1, until, timeout=TIMEOUT_US)
        except unicorn.UcError as exc:
            pc = self.uc.reg_read(uc_arm.UC_ARM_REG_PC)
            raise RuntimeError(f"emulation fault at pc={pc:#x} ({self._where(pc)}): {exc}") from exc
        pc = self.uc.reg_read(uc_arm.UC_ARM_REG_PC)
        if pc != until:
            raise RuntimeError(f"emulation stopped at pc={pc:#x} ({self._where(pc)}), not at {until:#x} (timeout?)")

    def _where(self, pc: int) -> str:
        best = None
        for name, s in self.symbols.items():
            start = s["st_value"] & ~1
            if s["st_info"]["type"] == "STT_FUNC" and start <= pc < start + max(s["st_size"], 1):
                best = name
        return best or "?"

    def _reset(self) -> None:
        self.uc.reg_write(uc_arm.UC_ARM_REG_SP, self.stack_top)
        self._start(self.address("Reset_Handler"), self.address("main"))

    def _block(self, address: int, size: int) -> Block:
        key = (address, size)
        block = self._blocks.get(key)
        if block is None:
            block = self.cycle_model.block(bytes(self.uc.mem_read(address, size)), address)
            self._blocks[key] = block
        return block

    def _tally(self, hits: dict[int, int], jumps: dict[int, int]) -> tuple[int, int]:
        """Instructions and estimated cycles of a block histogram (see :meth:`call`)."""
        instructions = cycles = 0
        for key, n in hits.items():
            address, size = key >> _SIZE_BITS, key & _SIZE_MASK
            block = self._block(address, size)
            instructions += n * block.n
            cycles += n * block.prefix[-1] + jumps.get(key, 0) * block.taken_penalty
        return instructions, cycles

    def call(self, function: str, args: tuple[int, ...] = (), count: bool = True) -> CallResult:
        """Call ``function`` with up to four integer/pointer arguments; return r0 and, with
        ``count``, the instructions, estimated cycles, stack bytes and layer marks.

        Counting keeps a histogram of executed blocks (keyed by address and size) and of how
        often each block was left other than by falling through (a taken final branch); the
        hook does nothing else, and the blocks are decoded and priced once, afterwards.
        """
        uc = self.uc
        entry = self.address(function)
        painted = self.stack_top - self.stack_limit
        if count:
            uc.mem_write(self.stack_limit, STACK_PAINT.to_bytes(4, "little") * (painted // 4))
        for reg, value in zip((uc_arm.UC_ARM_REG_R0, uc_arm.UC_ARM_REG_R1, uc_arm.UC_ARM_REG_R2,
                               uc_arm.UC_ARM_REG_R3), args):
            uc.reg_write(reg, value)
        uc.reg_write(uc_arm.UC_ARM_REG_SP, self.stack_top)
        uc.reg_write(uc_arm.UC_ARM_REG_LR, self.halt | 1)

        counter = None
        snapshots: dict[int, tuple] = {}

        def on_mark(_uc, address, _size, index):
            snapshots[index] = (counter.snapshot(), address)

        hooks = []
        if count:
            counter = NativeBlockCounter() if self.native else PythonBlockCounter()
            counter.install(uc)
            for index, addr in self.marks.items():
                hooks.append(uc.hook_add(unicorn.UC_HOOK_CODE, on_mark, index, addr, addr))
            uc.ctl_flush_tb()  # blocks translated before the hooks existed would not call them
        try:
            self._start(entry, self.halt)
        finally:
            if count:
                counter.remove(uc)
                for h in hooks:
                    uc.hook_del(h)
                uc.ctl_flush_tb()
        result = CallResult(return_value=uc.reg_read(uc_arm.UC_ARM_REG_R0))
        if not count:
            return result
        hits, jumps, _ = counter.histogram()
        result.instructions, result.cycles = self._tally(hits, jumps)
        for index, (snapshot, address) in snapshots.items():
            # The histogram already holds the whole block the mark sits in: take back its tail.
            hits, jumps, current = counter.histogram(snapshot)
            instructions, cycles = self._tally(hits, jumps)
            block = self._block(current >> _SIZE_BITS, current & _SIZE_MASK)
            k = block.addr_index[address]
            result.marks[index] = (instructions - (block.n - k), cycles - (block.prefix[-1] - block.prefix[k]))
        stack = np.frombuffer(bytes(uc.mem_read(self.stack_limit, painted)), dtype="<u4")
        changed = np.flatnonzero(stack != STACK_PAINT)
        if changed.size and changed[0] == 0:
            raise FitError(
                f"{function} overflowed the stack on {self.target.name}: it used all "
                f"{painted:,} free bytes of RAM above .bss",
                region="ram", overflow_bytes=0,
            )
        lowest = self.stack_limit + 4 * int(changed[0]) if changed.size else self.stack_top
        result.stack_bytes = self.stack_top - lowest
        return result

    def run_model(self, name: str, inputs: np.ndarray, dtype, output_size: int, count: bool = False,
                  io: tuple[int, int | None] | None = None) -> ModelRun:
        """Run the model on each row of ``inputs``; counts (if asked) are from the first row.
        ``io``: the harness keeps the input and output inside its arena ``t2m_arena`` at these
        byte offsets (the output's None: its own buffer ``t2m_output``), so the call is
        ``<name>_run_with_arena``; None: ``<name>_run`` on ``t2m_input`` and ``t2m_output``."""
        dtype = np.dtype(dtype)
        out_addr = self.address("t2m_output") if io is None or io[1] is None else None
        if io is not None:
            arena = self.address("t2m_arena")
            arena_bytes = int(self.symbols["t2m_arena"]["st_size"])
            in_addr = arena + io[0]
            out_addr = out_addr if out_addr is not None else arena + io[1]
            function, args = f"{name}_run_with_arena", (arena, arena_bytes, in_addr, out_addr)
        else:
            in_addr = self.address("t2m_input")
            function, args = f"{name}_run", (in_addr, out_addr)
        outputs = np.empty((len(inputs), output_size), dtype=dtype)
        first = None
        for k, row in enumerate(inputs):
            self.uc.mem_write(in_addr, np.ascontiguousarray(row, dtype=dtype).tobytes())
            res = self.call(function, args, count=count and k == 0)
            if res.return_value != 0:
                raise RuntimeError(f"{function} returned status {res.return_value} for input {k}")
            outputs[k] = np.frombuffer(bytes(self.uc.mem_read(out_addr, output_size * dtype.itemsize)),
                                       dtype=dtype)
            if first is None:
                first = res
        return ModelRun(outputs, first.instructions, first.cycles, first.stack_bytes, first.marks,
                        self.cycle_model.name)

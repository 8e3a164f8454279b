"""Cycle *estimates* from an executed instruction stream, per Cortex-M core.

The emulator (unicorn) executes instructions but does not model time. This module prices each
executed instruction with the core's published timing table, so that a run yields an
estimated cycle count. It is an estimate and is labelled so everywhere it is shown.

Sources
-------
- Cortex-M4: Arm Cortex-M4 Processor Technical Reference Manual r0p1 (Arm 100166),
  Table 3-1 "Processor instruction set summary" and section 3.3.2 "Load/store timings";
  FPU instruction timings from the same manual's FPU chapter (FPv4-SP).
- Cortex-M0+: Arm Cortex-M0+ Technical Reference Manual r0p1 (DDI 0484C), Table 3-1
  "Cortex-M0+ instruction summary".
- Cortex-M7 and Cortex-M33: Arm publishes no instruction timing table for either core.
  Both are priced with the Cortex-M4 table. For the M33 (3-stage pipeline like the M4) this
  should be close; for the M7 (6-stage, dual-issue, branch prediction) it is pessimistic: the
  M7 can retire two instructions a cycle, which this table never credits.

Assumptions (all tables)
------------------------
- Zero-wait-state memory for code and data (the tables' own premise): no flash wait states,
  no cache misses, no bus contention. Real boards at full clock add flash wait states that
  an ART accelerator or cache mostly hides for loop code (STM32) or an XIP cache (RP2040).
- A taken branch costs 1 + P cycles with P = 2 on the M4 table (the TRM gives 1 to 3,
  depending on alignment and width of the target); on the M0+ a taken conditional or
  unconditional B costs 2, BL 3, BX/BLX 2, POP with PC 3 + N.
- Whether a conditional branch was taken is read from the executed stream (the next block's
  address), so branch costs follow the real control flow.
- M4 load/store pipelining (TRM 3.3.2): a load/store single that directly follows another
  load or immediate-offset store in the same basic block costs 1 instead of 2; a store with an
  immediate offset always costs 1; nothing pipelines after a register-offset store.
  VLDR/VSTR are priced like LDR. LDRD/STRD and LDM/STM/PUSH/POP cost 1 + N.
- SDIV/UDIV (2 to 12 cycles, data-dependent early termination) are priced at 7.
- IT costs 1 (no folding assumed); instructions skipped by a failed IT condition are priced
  as if executed.
- Multiplies, including the 64-bit SMULL/UMULL/SMLAL/UMLAL and the DSP MACs, cost 1 on the
  M4 table; MULS costs 1 on the M0+ (the single-cycle multiplier option, as on the RP2040).
- FPv4-SP: VMLA/VMLS/VFMA/VFMS (and negated forms) 3, VDIV/VSQRT 14, other data
  processing 1, VLDM/VSTM/VPUSH/VPOP 1 + N words.
"""

from __future__ import annotations

from dataclasses import dataclass

import capstone
from capstone import arm as cs_arm


def _ids(*names: str) -> frozenset[int]:
    return frozenset(getattr(cs_arm, "ARM_INS_" + n) for n in names)


_BRANCH = _ids("B", "BL", "BX", "BLX", "CBZ", "CBNZ", "TBB", "TBH", "BXNS", "BLXNS")
_CALL = _ids("BL", "BLX", "BLXNS")
_LOAD_SINGLE = _ids(
    "LDR", "LDRB", "LDRH", "LDRSB", "LDRSH", "LDRT", "LDRBT", "LDRHT", "LDRSBT", "LDRSHT",
    "LDREX", "LDREXB", "LDREXH", "LDA", "LDAB", "LDAH", "LDAEX", "LDAEXB", "LDAEXH",
)
_STORE_SINGLE = _ids(
    "STR", "STRB", "STRH", "STRT", "STRBT", "STRHT", "STREX", "STREXB", "STREXH",
    "STL", "STLB", "STLH", "STLEX", "STLEXB", "STLEXH",
)
_DOUBLE = _ids("LDRD", "STRD", "LDREXD", "STREXD")
_MULTIPLE = _ids("LDM", "LDMDB", "LDMDA", "LDMIB", "STM", "STMDB", "STMDA", "STMIB")
_PUSH_POP = _ids("PUSH", "POP")
_V_LOAD_STORE = _ids("VLDR", "VSTR")
_V_MULTIPLE = _ids("VLDMIA", "VLDMDB", "VSTMIA", "VSTMDB", "VPUSH", "VPOP")
_DIVIDE = _ids("SDIV", "UDIV")
_FP_MAC = _ids("VMLA", "VMLS", "VNMLA", "VNMLS", "VFMA", "VFMS", "VFNMA", "VFNMS")
_FP_LONG = _ids("VDIV", "VSQRT")
_BARRIER = _ids("DSB", "DMB", "ISB")
_SYSREG = _ids("MRS", "MSR")

_PC = cs_arm.ARM_REG_PC
_NO_REG = cs_arm.ARM_REG_INVALID
_AL = cs_arm.ARM_CC_AL


@dataclass(frozen=True)
class Block:
    """One decoded basic block (as the emulator's translator cut it).

    prefix[k] is the estimated cycles of the block's first k instructions, so prefix[-1] is
    the whole block (not counting a conditional branch's taken penalty). addr_index maps an
    instruction address to its position in the block.
    """

    n: int
    prefix: tuple[int, ...]
    addr_index: dict[int, int]
    fallthrough: int
    taken_penalty: int  # extra cycles if the final conditional branch is taken; 0 if none


def _writes_pc(insn) -> bool:
    ops = insn.operands
    return bool(ops) and ops[0].type == cs_arm.ARM_OP_REG and ops[0].reg == _PC


def _reglist_words(insn, skip_base: bool) -> int:
    ops = insn.operands[1:] if skip_base else insn.operands
    words = 0
    for op in ops:
        if op.type == cs_arm.ARM_OP_REG:
            words += 2 if insn.reg_name(op.reg).startswith("d") else 1
    return words


def _has_pc(insn) -> bool:
    return any(op.type == cs_arm.ARM_OP_REG and op.reg == _PC for op in insn.operands)


def _is_conditional(insn) -> bool:
    return insn.id in (cs_arm.ARM_INS_CBZ, cs_arm.ARM_INS_CBNZ) or insn.cc not in (_AL, 0)


def _imm_offset(insn) -> bool:
    for op in insn.operands:
        if op.type == cs_arm.ARM_OP_MEM:
            return op.mem.index == _NO_REG
    return True


class CycleModel:
    """Prices a basic block; subclasses give one core's table."""

    name = "abstract"
    source = ""

    def __init__(self) -> None:
        self._md = capstone.Cs(capstone.CS_ARCH_ARM, capstone.CS_MODE_THUMB | capstone.CS_MODE_MCLASS)
        self._md.detail = True

    def block(self, code: bytes, address: int) -> Block:
        prefix = [0]
        addr_index: dict[int, int] = {}
        prev = None
        end = address
        penalty = 0
        for k, insn in enumerate(self._md.disasm(code, address)):
            addr_index[insn.address] = k
            cycles, taken_extra, conditional = self.cost(insn, prev)
            penalty = 0
            if taken_extra:
                if conditional:
                    penalty = taken_extra
                else:
                    cycles += taken_extra
            prefix.append(prefix[-1] + cycles)
            prev = insn
            end = insn.address + insn.size
        if end - address != len(code):
            raise ValueError(f"could not decode the block at {address:#x} ({len(code)} bytes)")
        return Block(len(prefix) - 1, tuple(prefix), addr_index, end, penalty)

    def cost(self, insn, prev) -> tuple[int, int, bool]:
        """(cycles if not taken, extra cycles if it branches, whether the branch is conditional)."""
        raise NotImplementedError


class CortexM4Timing(CycleModel):
    """Cortex-M4 TRM r0p1 Table 3-1 (see the module docstring for assumptions)."""

    name = "cortex-m4 TRM table"
    source = "Arm Cortex-M4 TRM r0p1 (100166), Table 3-1 and 3.3.2; FPv4-SP timings"
    P = 2  # pipeline refill after a taken branch (TRM: 1 to 3)

    def cost(self, insn, prev) -> tuple[int, int, bool]:
        i = insn.id
        cond = _is_conditional(insn)
        if i in _BRANCH:
            if i in (cs_arm.ARM_INS_TBB, cs_arm.ARM_INS_TBH):
                return 2, self.P, cond
            return 1, self.P, cond and i not in _CALL
        if i in _PUSH_POP:
            n = _reglist_words(insn, skip_base=False)
            return 1 + n, (self.P if _has_pc(insn) else 0), cond
        if i in _MULTIPLE:
            n = _reglist_words(insn, skip_base=True)
            return 1 + n, (self.P if _has_pc(insn) else 0), cond
        if i in _V_MULTIPLE:
            skip = i not in (cs_arm.ARM_INS_VPUSH, cs_arm.ARM_INS_VPOP)
            return 1 + _reglist_words(insn, skip_base=skip), 0, cond
        if i in _DOUBLE:
            return 3, 0, cond
        if i in _LOAD_SINGLE or i in _V_LOAD_STORE:
            if _writes_pc(insn):
                return 2, self.P, cond
            return (1 if self._pipelines_after(prev) else 2), 0, cond
        if i in _STORE_SINGLE:
            if _imm_offset(insn):
                return 1, 0, cond
            return (1 if self._pipelines_after(prev) else 2), 0, cond
        if i in _DIVIDE:
            return 7, 0, cond
        if i in _FP_MAC:
            return 3, 0, cond
        if i in _FP_LONG:
            return 14, 0, cond
        if _writes_pc(insn):
            return 1, self.P, cond
        return 1, 0, cond

    @staticmethod
    def _pipelines_after(prev) -> bool:
        if prev is None:
            return False
        if prev.id in _LOAD_SINGLE or prev.id in _V_LOAD_STORE:
            return not _writes_pc(prev)
        return prev.id in _STORE_SINGLE and _imm_offset(prev)


class CortexM0PlusTiming(CycleModel):
    """Cortex-M0+ TRM r0p1 Table 3-1 (see the module docstring for assumptions)."""

    name = "cortex-m0plus TRM table"
    source = "Arm Cortex-M0+ TRM r0p1 (DDI 0484C), Table 3-1"

    def cost(self, insn, prev) -> tuple[int, int, bool]:
        i = insn.id
        cond = _is_conditional(insn)
        if i == cs_arm.ARM_INS_BL:
            return 3, 0, False
        if i in (cs_arm.ARM_INS_BX, cs_arm.ARM_INS_BLX):
            return 2, 0, False
        if i == cs_arm.ARM_INS_B:
            return (1, 1, True) if cond else (2, 0, False)
        if i in _PUSH_POP or i in _MULTIPLE:
            n = _reglist_words(insn, skip_base=i in _MULTIPLE)
            return 1 + n + (2 if _has_pc(insn) else 0), 0, False
        if i in _LOAD_SINGLE or i in _STORE_SINGLE:
            return 2, 0, False
        if i in _BARRIER or i in _SYSREG:
            return 3, 0, False
        if _writes_pc(insn):
            return 2, 0, False
        return 1, 0, False


def model_for(core: str) -> CycleModel:
    """The timing table used for a core name (see the module docstring)."""
    if core == "cortex-m0plus":
        return CortexM0PlusTiming()
    return CortexM4Timing()

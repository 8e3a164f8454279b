"""plan_memory: place every intermediate activation in one static arena, reusing space by lifetime.

Algorithm (TFLM's greedy planner, in several orders): each buffer lives from the first node that
writes it to the last node that reads it (or any reshape alias of it). Buffers are placed one by
one, each at the lowest offset where it overlaps no placed buffer whose lifetime overlaps its
own; largest first (TFLM's order), and in a few other orders (by first write, longest-lived,
most byte-steps), keeping the smallest arena. A node's
inputs and output are live together, so no kernel runs in place.

Bounds reported beside the arena (no plan of these lifetimes can be smaller):
- activation_lower_bound_bytes: the largest total of activation buffers live at one step (a
  node's inputs, its output and whatever later nodes still read), scratch left out: the RAM the
  model's tensors need whatever the kernels;
- lower_bound_bytes: the same with each node's scratch added at its own step (the arena's
  bound with these kernels). It exceeds the activation bound by at most the largest scratch;
- scratch: per node, the bytes of its scratch buffer. The arena exceeds lower_bound_bytes
  only when fragmentation forces a gap in the greedy placement.

The model input and output are the caller's buffers and take no arena space; reshape outputs
share their input's storage. A caller that wants them inside its arena gets a place for each
("io"): the input at the lowest offset no buffer written before its last reader overlaps, the
output at the lowest offset no buffer read after its first writer (nor the input, if their
lifetimes meet) overlaps; "io_arena_bytes" is the arena grown to hold both. A node may ask
for scratch space (Op.scratch_bytes, e.g. a padded copy of a conv input): a buffer live during
that node only, named "<node>#scratch". A layer whose arrays are entropy coded (entropy_code)
asks for its kernel's scratch and the decoded arrays after it (EntropyCoding.scratch_bytes).

Concatenation in place: activations are channel-major, so a channel concatenation is a sequence
of contiguous blocks, one per input. An input the plan can place is not a buffer of its own: its
producer writes it straight into its block of the concatenation's output, which then lives from
the first such write to its last reader (the concatenation itself copies nothing for it). An
input keeps its own buffer, and the concatenation copies it (ops/cat.py), when it is the model
input or output (the caller's storage), when it (or a reshape of it) is concatenated more than
once (into two concatenations, or twice into one). A reshape of a tensor is placed by placing
the tensor. Placement nests: a concatenation placed in a larger one puts its own inputs there
too.

Requires: a graph whose tensors have final shapes. Ensures: the graph's MemoryPlan record: per
buffer its offset, size and lifetime; per tensor its buffer (base) and, for a tensor inside a
larger buffer, its byte offset there (inner); in_place: the tensors written into a
concatenation.
"""
from __future__ import annotations

from collections import Counter

from torch2mcu.ir import Graph
from torch2mcu.ir.records import EntropyCoding, MemoryPlan
from torch2mcu.ops import get_op

ALIGN = 4
SCRATCH = "#scratch"  # a node's scratch buffer is "<node>#scratch"


def _aligned(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


def _alias_root(g: Graph, producer: dict) -> dict[str, str]:
    """tensor -> the tensor whose storage it is (itself, or the source of a reshape chain)."""
    root: dict[str, str] = {t: t for t in g.inputs}
    for node in g.nodes:
        root[node.output] = (root[node.inputs[0]] if get_op(node.op).alias else node.output)
    return root


def concat_placements(g: Graph) -> dict[str, tuple[str, int]]:
    """Storage tensor -> (concatenation output, element offset of its block) for every input a
    concatenation can have written in place (see the module docstring for the rules)."""
    from torch2mcu.ops.cat import block_offsets  # noqa: PLC0415 - ops import passes' users

    producer = {n.output: n for n in g.nodes}
    root = _alias_root(g, producer)
    uses = Counter(root[t] for n in g.nodes if n.op == "cat" for t in n.inputs)
    out_root = root[g.outputs[0]]
    placed: dict[str, tuple[str, int]] = {}
    for node in g.nodes:
        if node.op != "cat":
            continue
        for t, off in zip(node.inputs, block_offsets(node, g)):
            r = root[t]
            if r in producer and uses[r] == 1 and r != out_root:
                placed[r] = (node.output, off)
    return placed


# Orders in which the greedy planner places buffers; the smallest arena wins (ties: the first).
ORDERS = (
    lambda b, size, start, end: (-size[b], start[b], b),                        # TFLM's
    lambda b, size, start, end: (start[b], -size[b], b),                        # by first write
    lambda b, size, start, end: (-(end[b] - start[b]), -size[b], b),            # longest-lived
    lambda b, size, start, end: (-size[b] * (end[b] - start[b] + 1), b),        # most byte-steps
)


def _greedy(order: list[str], size: dict, start: dict, end: dict) -> dict[str, int]:
    offsets: dict[str, int] = {}
    for b in order:
        busy = sorted((offsets[o], offsets[o] + size[o]) for o in offsets
                      if start[o] <= end[b] and start[b] <= end[o])
        at = 0
        for lo, hi in busy:
            if at + size[b] <= lo:
                break
            at = max(at, hi)
        offsets[b] = at
    return offsets


def _best_placement(buffers, size, start, end) -> tuple[dict[str, int], int]:
    """Each buffer at the lowest offset free over its lifetime, buffers taken in each of ORDERS;
    the plan with the smallest arena."""
    best, best_arena = {}, None
    for key in ORDERS:
        offsets = _greedy(sorted(buffers, key=lambda b: key(b, size, start, end)), size, start, end)
        arena = max((offsets[b] + size[b] for b in buffers), default=0)
        if best_arena is None or arena < best_arena:
            best, best_arena = offsets, arena
    return best, best_arena or 0


def _lowest_free(n: int, busy: list[tuple[int, int]]) -> int:
    at = 0
    for lo, hi in sorted(busy):
        if at + n <= lo:
            break
        at = max(at, hi)
    return at


def _io_places(g: Graph, base, offsets, size, start, end, elem_bytes) -> dict:
    """{"input": (byte offset, bytes), "output": (...)}: where the caller may keep the model
    input and output inside the arena (see the module docstring); the output is left out when
    it is the input itself (a model of reshapes only)."""
    in_bytes = _aligned(g.tensors[g.inputs[0]].size * elem_bytes)
    out_bytes = _aligned(g.tensors[g.outputs[0]].size * elem_bytes)
    in_end = max((i for i, n in enumerate(g.nodes) for t in n.inputs if base[t] in g.inputs),
                 default=-1)
    busy_in = [(offsets[b], offsets[b] + size[b]) for b in offsets if start[b] <= in_end]
    io = {"input": (_lowest_free(in_bytes, busy_in), in_bytes)}
    out_base = base[g.outputs[0]]
    if out_base in start:
        out_start = start[out_base]
        busy = [(offsets[b], offsets[b] + size[b]) for b in offsets if end[b] >= out_start]
        if out_start <= in_end:
            busy.append((io["input"][0], io["input"][0] + in_bytes))
        io["output"] = (_lowest_free(out_bytes, busy), out_bytes)
    return io


def plan_memory(graph: Graph, elem_bytes: int) -> Graph:
    g = graph.copy()
    producer = {n.output: n for n in g.nodes}
    root = _alias_root(g, producer)
    placed = concat_placements(g)
    loc: dict[str, tuple[str, int]] = {}

    def locate(t: str) -> tuple[str, int]:
        """(buffer, element offset in it); a placed tensor lies in its concatenation's buffer,
        which may itself lie in another (the chain only moves to later nodes, so it ends)."""
        if t not in loc:
            r = root[t]
            if r in placed:
                c, off = placed[r]
                b, inner = locate(c)
                loc[t] = (b, inner + off)
            else:
                loc[t] = (r, 0)
        return loc[t]

    for t in g.tensors:
        if t in root:
            locate(t)
    base = {t: b for t, (b, _) in loc.items()}
    inner = {t: off * elem_bytes for t, (_, off) in loc.items() if off}
    out_base = base[g.outputs[0]]
    start: dict[str, int] = {}
    end: dict[str, int] = {}
    for i, node in enumerate(g.nodes):
        if not get_op(node.op).alias:  # a writer: the buffer is live from its first write
            b = base[node.output]
            start.setdefault(b, i)
            end[b] = max(end.get(b, i), i)
        for t in node.inputs:
            if base[t] in end:
                end[base[t]] = max(end[base[t]], i)
    buffers = [b for b in start if b != out_base and b not in g.inputs]
    size = {b: _aligned(g.tensors[b].size * elem_bytes) for b in buffers}
    for i, node in enumerate(g.nodes):
        scratch = (node.record(EntropyCoding).scratch_bytes if node.has(EntropyCoding)
                   else get_op(node.op).scratch_bytes(node))
        if scratch:
            b = node.name + SCRATCH
            buffers.append(b)
            start[b] = end[b] = i
            size[b] = _aligned(int(scratch))
    offsets, arena = _best_placement(buffers, size, start, end)
    scratch = {b[:-len(SCRATCH)]: size[b] for b in buffers if b.endswith(SCRATCH)}
    live = [sum(size[b] for b in buffers if start[b] <= i <= end[b] and not b.endswith(SCRATCH))
            for i in range(len(g.nodes))]
    lower = max((n + scratch.get(node.name, 0) for n, node in zip(live, g.nodes)), default=0)
    io = _io_places(g, base, offsets, size, start, end, elem_bytes)
    g.put(MemoryPlan(elem_bytes, arena, lower, offsets, size, base, inner, out_base,
                     {r: c for r, (c, _) in sorted(placed.items())},
                     {b: (start[b], end[b]) for b in buffers}, io,
                     max([arena] + [off + n for off, n in io.values()]),
                     activation_lower_bound_bytes=max(live, default=0), scratch=scratch))
    return g

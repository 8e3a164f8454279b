"""The arena planner: live buffers never overlap, the arena respects the lower bound, and
reshapes share storage."""
from __future__ import annotations


from conftest import convert_and_verify
from test_models import DepthwiseSeparable, Residual
from torch2mcu.ir.records import ConvPlan, MemoryPlan, weight_format
from torch2mcu.models import LeNet5


def _check_plan(graph, elem_bytes):
    mem = graph.record(MemoryPlan)
    assert mem.elem_bytes == elem_bytes
    offs, life = mem.offsets, mem.lifetimes
    sizes = mem.sizes
    for b in offs:
        if "#scratch" not in b:
            assert sizes[b] >= graph.tensors[b].size * elem_bytes
    for a in offs:
        assert offs[a] % 4 == 0
        assert offs[a] + sizes[a] <= mem.arena_bytes
        for b in offs:
            if a < b and life[a][0] <= life[b][1] and life[b][0] <= life[a][1]:
                disjoint = offs[a] + sizes[a] <= offs[b] or offs[b] + sizes[b] <= offs[a]
                assert disjoint, f"{a} and {b} are live together and overlap"
    assert mem.lower_bound_bytes <= mem.arena_bytes
    # every reader of a buffer runs within its lifetime
    for i, node in enumerate(graph.nodes):
        for t in node.inputs:
            b = mem.base[t]
            if b in life:
                assert life[b][0] < i <= life[b][1]


def test_plans_are_valid(out_dir):
    for k, (cls, shape) in enumerate([(Residual, (1, 12, 12)), (DepthwiseSeparable, (3, 20, 20)),
                                      (LeNet5, (1, 28, 28))]):
        r = convert_and_verify(cls(), shape, out_dir.parent / f"m{k}", seed=5)
        conv = r["converted"]
        _check_plan(conv.int8_graph, 1)
        _check_plan(conv.float_graph, 4)
        assert r["mismatches"] == 0


def test_lenet_arena_reuses_memory(out_dir):
    conv = convert_and_verify(LeNet5(), (1, 28, 28), out_dir, seed=6, formats=("dense",))["converted"]
    mem = conv.int8_graph.record(MemoryPlan)
    total = sum(mem.sizes.values())
    # int8: both max-pools are fused into their convs, so the unpooled 6x28x28 output never
    # exists; the largest step is conv1 reading its padded input copy (32x32 = 1024 bytes, plus
    # the dense kernel's gathered windows: 25 bytes for each of the 2x2 pooled pixels) while
    # writing the pooled 6x14x14 (1176 bytes)
    conv1 = conv.int8_graph.node("conv1")
    assert weight_format(conv1) == "dense" and conv1.record(ConvPlan).col_bytes == 100
    assert mem.sizes["conv1#scratch"] == 1024 + 100
    assert mem.arena_bytes == mem.lower_bound_bytes == 1024 + 100 + 1176
    assert mem.arena_bytes < total
    # flatten is free: fc1 reads conv2's (pooled) buffer directly
    fc1 = conv.int8_graph.node("fc1")
    assert mem.base[fc1.inputs[0]] == conv.int8_graph.node("conv2").output
    # float32 baseline: the same max-pools fused (its conv reads the unpadded input in place),
    # so the largest step is conv2 reading conv1's pooled 6x14x14 (1176 floats) while writing
    # its pooled 16x5x5 (400 floats)
    assert not any(n.op == "maxpool2d" for n in conv.float_graph.nodes)
    assert conv.float_graph.record(MemoryPlan).arena_bytes == 4 * (1176 + 400)

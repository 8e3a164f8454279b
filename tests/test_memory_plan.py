"""The arena planner: live buffers never overlap, the arena respects the lower bound, and
reshapes share storage."""
from __future__ import annotations


from conftest import convert_and_verify
from test_models import DepthwiseSeparable, Residual
from torch2mcu.ir import Graph
from torch2mcu.ir.graph import Node, Tensor
from torch2mcu.ir.records import ConvPlan, MemoryPlan, WeightEncoding, weight_format
from torch2mcu.models import LeNet5
from torch2mcu.passes.plan_memory import plan_memory


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
    assert mem.activation_lower_bound_bytes <= mem.lower_bound_bytes <= mem.arena_bytes
    assert mem.lower_bound_bytes <= mem.activation_lower_bound_bytes + mem.max_scratch[1]
    assert mem.scratch == {b[:-len("#scratch")]: n for b, n in sizes.items() if "#scratch" in b}
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
    # int8: both max-pools are fused into their convs (the fast KxK kernel), so the unpooled
    # 6x28x28 output never exists and no input is copied padded: the kernel's scratch holds one
    # pixel's receptive field and two pixels' fields as int16 (6 * R4 bytes, R4 = 28 for conv1,
    # 152 for conv2). The largest step is conv2: its input 6x14x14, its pooled 16x5x5 output
    # and its 912 bytes of scratch
    conv1, conv2 = conv.int8_graph.node("conv1"), conv.int8_graph.node("conv2")
    assert weight_format(conv1) == "dense" and conv1.record(ConvPlan).col_bytes == 6 * 28
    assert conv1.record(WeightEncoding).kernel == conv2.record(WeightEncoding).kernel == "conv2d_kxk"
    assert mem.sizes["conv1#scratch"] == mem.scratch["conv1"] == 6 * 28
    assert mem.scratch["conv2"] == 6 * 152
    assert mem.arena_bytes == mem.lower_bound_bytes == 1176 + 400 + 912
    # the activations alone peak at conv2 too
    assert mem.activation_lower_bound_bytes == 1176 + 400
    assert mem.max_scratch == ("conv2", 912)
    assert mem.arena_bytes < total
    # flatten is free: fc1 reads conv2's (pooled) buffer directly
    fc1 = conv.int8_graph.node("fc1")
    assert mem.base[fc1.inputs[0]] == conv.int8_graph.node("conv2").output
    # float32 baseline: the same max-pools fused (its conv reads the unpadded input in place),
    # so the largest step is conv2 reading conv1's pooled 6x14x14 (1176 floats) while writing
    # its pooled 16x5x5 (400 floats)
    assert not any(n.op == "maxpool2d" for n in conv.float_graph.nodes)
    assert conv.float_graph.record(MemoryPlan).arena_bytes == 4 * (1176 + 400)


def _hand_built(scratch: dict[str, tuple[int, int]]) -> Graph:
    """x -> c0 -> a -> c1 -> b; add(a, b) -> c; c -> c3 -> y, with int8 sizes a 398 (400
    planned), b 600, c 600 and the model's x and y outside the arena; scratch: conv name ->
    (padded copy bytes, working bytes) in its ConvPlan record (all the plan reads of it)."""
    shapes = {"x": (100,), "a": (398,), "b": (600,), "c": (600,), "y": (10,)}
    nodes = [Node("c0", "conv2d", ["x"], ["a"]), Node("c1", "conv2d", ["a"], ["b"]),
             Node("add", "add", ["a", "b"], ["c"]), Node("c3", "conv2d", ["c"], ["y"])]
    for n in nodes:
        if n.name in scratch:
            pad, work = scratch[n.name]
            n.put(ConvPlan((1, 1), None, pad, work))
    return Graph("hand", {t: Tensor(t, s) for t, s in shapes.items()}, nodes, ["x"], ["y"])


def test_bound_without_scratch_on_a_hand_built_graph():
    """The activations live at each step: c0 a (400), c1 a + b (1000), add a + b + c (1600),
    c3 c (600). The activation bound is 1600 (at add), whatever the scratch; c0's scratch
    (1996 bytes of padded copy + 4 of working memory) makes the bound with
    scratch 400 + 2000 = 2400, and the arena meets it."""
    g = plan_memory(_hand_built({"c0": (1996, 4), "c1": (0, 98), "c3": (0, 200)}), 1)
    mem = g.record(MemoryPlan)
    assert mem.sizes["a"] == 400 and "x" not in mem.sizes and "y" not in mem.sizes
    assert mem.activation_lower_bound_bytes == 1600
    assert mem.scratch == {"c0": 2000, "c1": 100, "c3": 200}
    assert mem.max_scratch == ("c0", 2000)
    assert mem.lower_bound_bytes == 2400  # max(400 + 2000, 1000 + 100, 1600, 600 + 200)
    assert mem.arena_bytes == 2400
    _check_plan(g, 1)
    # without scratch, the three bounds are one
    g = plan_memory(_hand_built({}), 1)
    mem = g.record(MemoryPlan)
    assert mem.scratch == {} and mem.max_scratch == (None, 0)
    assert mem.activation_lower_bound_bytes == mem.lower_bound_bytes == mem.arena_bytes == 1600
    # scratch at a step below the fullest costs nothing: c1's 500 bytes beside a + b (1000)
    g = plan_memory(_hand_built({"c1": (0, 500)}), 1)
    mem = g.record(MemoryPlan)
    assert mem.activation_lower_bound_bytes == mem.lower_bound_bytes == mem.arena_bytes == 1600
    assert mem.max_scratch == ("c1", 500)
    # float32: four bytes an element (a: 1592, b, c: 2400), the fullest step is still add
    mem = plan_memory(_hand_built({"c0": (1996, 4)}), 4).record(MemoryPlan)
    assert mem.activation_lower_bound_bytes == 1592 + 2 * 2400
    assert mem.lower_bound_bytes == mem.activation_lower_bound_bytes  # 1592 + 2000 < 6392

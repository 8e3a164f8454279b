"""Layer classes, as the anchors doc groups layers: each class is one kind of kernel work.

A layer's class comes from its int8 graph node (op, kernel, stride, groups, channels). Its "work"
is what its cycles are divided by: MACs for conv and FC layers, elements for the residual add
(its MACs are its output elements), input elements for the average pool (which has no MACs), and
output elements for anything else.
"""
from __future__ import annotations

from dataclasses import dataclass

from torch2mcu.ir import Graph

# class key -> label, in the order the tables list them
LABELS = {
    "stem": "stem (<= 3 input channels)",
    "dw3x3": "3x3 depthwise",
    "dw3x3_s2": "3x3 depthwise, stride 2",
    "pw1x1": "1x1 pointwise",
    "shortcut": "1x1 stride-2 shortcut",
    "conv": "KxK conv",
    "conv_s2": "stride-2 conv",
    "fc": "dense FC",
    "fc_short": "FC, short rows (< 32 inputs)",
    "add": "residual add",
    "avgpool": "average pool",
    "other": "other",
}
SHORT_ROW = 32  # an FC with fewer inputs than this per output is "short rows"
UNITS = {"add": "element", "avgpool": "input element", "other": "output element"}


@dataclass(frozen=True)
class LayerClass:
    key: str
    cin: int | None    # input channels (conv) or features (FC)
    cout: int | None   # output channels or features
    work: int          # MACs, or elements (see `unit`)
    unit: str          # "MAC", "element", "input element", "output element"

    @property
    def label(self) -> str:
        return LABELS[self.key]


def _conv_class(node) -> tuple[str, int, int]:
    cout, cin_g, kh, kw = node.params["weight"].shape
    groups = int(node.attrs["groups"])
    cin = cin_g * groups
    stride = max(node.attrs["stride"])
    dilated = max(node.attrs.get("dilation", (1, 1))) > 1
    if dilated or stride > 2:
        return "other", cin, cout
    if groups > 1:
        if groups == cin and (kh, kw) == (3, 3):
            return ("dw3x3" if stride == 1 else "dw3x3_s2"), cin, cout
        return "other", cin, cout
    if cin <= 3:
        return "stem", cin, cout
    if (kh, kw) == (1, 1):
        return ("pw1x1" if stride == 1 else "shortcut"), cin, cout
    return ("conv" if stride == 1 else "conv_s2"), cin, cout


def classify(node, graph: Graph, macs: int) -> LayerClass:
    """The class of one node of the int8 graph; `macs` is its MAC count (the manifest's)."""
    if node.op == "conv2d":
        key, cin, cout = _conv_class(node)
    elif node.op == "linear":
        cout, cin = node.params["weight"].shape
        key = "fc_short" if cin < SHORT_ROW else "fc"
    elif node.op == "add":
        key, cin, cout = "add", None, None
    elif node.op == "avgpool2d":
        key, cin, cout = "avgpool", None, None
    else:
        key, cin, cout = "other", None, None
    unit = UNITS.get(key, "MAC")
    if key == "avgpool":
        work = graph.tensors[node.inputs[0]].size
    elif key == "other" and not macs:
        work = graph.tensors[node.output].size
    else:
        work = macs
    if key == "other" and macs:
        unit = "MAC"
    return LayerClass(key, int(cin) if cin is not None else None,
                      int(cout) if cout is not None else None, int(work), unit)

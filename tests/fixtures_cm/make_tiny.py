"""Write the hand-made 'tiny' fixture: an int8 model and its float32 twin in the generated-folder
contract (tiny.c, tiny.h, manifest.json; the runtime is copied in by the tests).

    conv1  conv2d 1x6x6 -> 2x6x6, 3x3, stride 1, pad 1, ReLU
    pool1  maxpool2d 2x6x6 -> 2x3x3, 2x2, stride 2
    fc1    fully connected 18 -> 4

params.json holds every integer and float parameter, so the tests can compute the reference
outputs in numpy without reading the C. Run from anywhere: python tests/fixtures_cm/make_tiny.py
"""

import json
import math
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
SEED = 1234


def quantize_multiplier(m: float) -> tuple[int, int]:
    """TFLite QuantizeMultiplier: m = q * 2^shift with q a Q31 mantissa in [2^30, 2^31)."""
    if m == 0:
        return 0, 0
    frac, shift = math.frexp(m)
    q = round(frac * (1 << 31))
    if q == 1 << 31:
        q //= 2
        shift += 1
    return int(q), int(shift)


def c_array(ctype: str, name: str, values) -> str:
    body = ", ".join(str(int(v)) if ctype != "float" else repr(float(v)) + "f" for v in np.ravel(values))
    return f"static const {ctype} {name}[{np.size(values)}] = {{{body}}};"


def folded(bias, weights, z_in) -> list[int]:
    """The runtime's conv / fc kernels take the bias with the input zero point folded in."""
    w = np.array(weights).reshape(len(bias), -1)
    return (np.array(bias) - z_in * w.sum(axis=1)).tolist()


def make_params() -> dict:
    rng = np.random.default_rng(SEED)
    w1 = rng.normal(0, 0.4, size=(2, 1, 3, 3)).astype(np.float32)
    b1 = rng.normal(0, 0.1, size=2).astype(np.float32)
    w2 = rng.normal(0, 0.3, size=(4, 18)).astype(np.float32)
    b2 = rng.normal(0, 0.1, size=4).astype(np.float32)
    s_in, z_in = 0.05, -3
    s1, z1 = 0.04, -128  # after ReLU: real range [0, 10.2]
    s2, z2 = 0.1, 5
    sw1 = np.abs(w1).reshape(2, -1).max(axis=1) / 127
    sw2 = np.abs(w2).max(axis=1) / 127
    qw1 = np.clip(np.round(w1 / sw1[:, None, None, None]), -127, 127).astype(int)
    qw2 = np.clip(np.round(w2 / sw2[:, None]), -127, 127).astype(int)
    qb1 = np.round(b1 / (s_in * sw1)).astype(int)
    qb2 = np.round(b2 / (s1 * sw2)).astype(int)
    m1 = [quantize_multiplier(s_in * sw1[c] / s1) for c in range(2)]
    m2 = [quantize_multiplier(s1 * sw2[c] / s2) for c in range(4)]
    return {
        "seed": SEED,
        "input": {"scale": s_in, "zero_point": z_in},
        "conv1": {"w": qw1.tolist(), "b": qb1.tolist(), "mult": [m for m, _ in m1], "shift": [s for _, s in m1],
                  "z_out": z1, "act_min": z1, "act_max": 127,
                  "w_f32": w1.tolist(), "b_f32": b1.tolist()},
        "fc1": {"w": qw2.tolist(), "b": qb2.tolist(), "mult": [m for m, _ in m2], "shift": [s for _, s in m2],
                "z_out": z2, "act_min": -128, "act_max": 127,
                "w_f32": w2.tolist(), "b_f32": b2.tolist()},
    }


HEADER = """\
/* {name}: hand-written test fixture for torch2mcu.targets.cortex_m ({dtype}).
 * Written by tests/fixtures_cm/make_tiny.py; follows the generated-folder contract. */
#ifndef {NAME}_H
#define {NAME}_H

#include "t2m.h"

#define {NAME}_INPUT_SIZE 36
#define {NAME}_OUTPUT_SIZE 4
#define {NAME}_ARENA_BYTES {arena}

t2m_status {name}_run(const {ctype} *input, {ctype} *output);

#endif /* {NAME}_H */
"""

INT8_SOURCE = """\
/* tiny: hand-written test fixture for torch2mcu.targets.cortex_m (int8).
 * Written by tests/fixtures_cm/make_tiny.py from seed {seed}. */
#include "tiny.h"

#ifndef T2M_LAYER_MARK
#define T2M_LAYER_MARK(i) ((void)0)
#endif

/* Activations: conv1 output at 0 (2x6x6), pool1 output at 72 (2x3x3), conv1's padded input
 * copy at 92 (1x8x8). */
static int8_t tiny_arena[TINY_ARENA_BYTES];

static const t2m_pad_shape conv1_pad = {{1, 6, 6, 8, 8, 1, 1}};

/* conv1: conv2d 1x6x6 -> 2x6x6, k 3x3, stride 1, pad 1, ReLU; in (0.05, -3) out (0.04, -128) */
{conv1_w}
{conv1_b}
{conv1_m}
{conv1_s}
/* the kernel reads the padded 8x8 copy; conv1_b is the bias with the zero point folded in */
static const t2m_conv_shape conv1_shape = {{1, 8, 8, 2, 6, 6, 3, 3, 1, 1, 0, 0, 1, 1, 1, 1, 1}};
static const t2m_requant_s8 conv1_q = {{-128, -128, 127, conv1_m, conv1_s, 0}};

/* pool1: maxpool2d 2x6x6 -> 2x3x3, k 2x2, stride 2 */
static const t2m_pool_shape pool1_shape = {{2, 6, 6, 3, 3, 2, 2, 2, 2, 0, 0, 0, 0}};

/* fc1: fully connected 18 -> 4; in (0.04, -128) out (0.1, 5) */
{fc1_w}
{fc1_b}
{fc1_m}
{fc1_s}
static const t2m_fc_shape fc1_shape = {{18, 4}};
static const t2m_requant_s8 fc1_q = {{5, -128, 127, fc1_m, fc1_s, 0}};

t2m_status tiny_run(const int8_t *input, int8_t *output)
{{
    if (input == NULL || output == NULL) {{
        return T2M_ERR_NULL_ARGUMENT;
    }}
    T2M_LAYER_MARK(0);
    t2m_pad_s8(&conv1_pad, -3, input, tiny_arena + 92);
    t2m_conv2d_rows_s8(&conv1_shape, &conv1_q, tiny_arena + 92, conv1_w, conv1_b, tiny_arena + 0);
    T2M_LAYER_MARK(1);
    t2m_maxpool2d_s8(&pool1_shape, -128, 127, tiny_arena + 0, tiny_arena + 72);
    T2M_LAYER_MARK(2);
    t2m_fc_s8(&fc1_shape, &fc1_q, tiny_arena + 72, fc1_w, fc1_b, output);
    T2M_LAYER_MARK(3);
    return T2M_OK;
}}
"""

F32_SOURCE = """\
/* tiny: hand-written test fixture for torch2mcu.targets.cortex_m (float32 twin).
 * Written by tests/fixtures_cm/make_tiny.py from seed {seed}. */
#include <float.h>

#include "tiny.h"

#ifndef T2M_LAYER_MARK
#define T2M_LAYER_MARK(i) ((void)0)
#endif

/* Activations: conv1 output at 0 (2x6x6), pool1 output at 72 (2x3x3), in floats. */
static float tiny_arena[TINY_ARENA_BYTES / sizeof(float)];

/* conv1: conv2d 1x6x6 -> 2x6x6, k 3x3, stride 1, pad 1, ReLU */
{conv1_w}
{conv1_b}
static const t2m_conv_shape conv1_shape = {{1, 6, 6, 2, 6, 6, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1}};

/* pool1: maxpool2d 2x6x6 -> 2x3x3, k 2x2, stride 2 */
static const t2m_pool_shape pool1_shape = {{2, 6, 6, 3, 3, 2, 2, 2, 2, 0, 0, 0, 0}};

/* fc1: fully connected 18 -> 4 */
{fc1_w}
{fc1_b}
static const t2m_fc_shape fc1_shape = {{18, 4}};

t2m_status tiny_run(const float *input, float *output)
{{
    if (input == NULL || output == NULL) {{
        return T2M_ERR_NULL_ARGUMENT;
    }}
    T2M_LAYER_MARK(0);
    t2m_conv2d_f32(&conv1_shape, 0.0f, FLT_MAX, input, conv1_w, conv1_b, tiny_arena + 0);
    T2M_LAYER_MARK(1);
    t2m_maxpool2d_f32(&pool1_shape, tiny_arena + 0, tiny_arena + 72);
    T2M_LAYER_MARK(2);
    t2m_fc_f32(&fc1_shape, -FLT_MAX, FLT_MAX, tiny_arena + 72, fc1_w, fc1_b, output);
    T2M_LAYER_MARK(3);
    return T2M_OK;
}}
"""

LAYERS = [{"name": "conv1", "op": "conv2d"}, {"name": "pool1", "op": "maxpool2d"}, {"name": "fc1", "op": "linear"}]


def main() -> None:
    p = make_params()
    (HERE / "tiny").mkdir(exist_ok=True)
    (HERE / "tiny" / "params.json").write_text(json.dumps(p, indent=1) + "\n")
    c1, f1 = p["conv1"], p["fc1"]
    for dtype, ctype, arena in (("int8", "int8_t", 156), ("float32", "float", 360)):
        d = HERE / "tiny" / dtype
        d.mkdir(exist_ok=True)
        (d / "tiny.h").write_text(HEADER.format(name="tiny", NAME="TINY", dtype=dtype, ctype=ctype, arena=arena))
        manifest = {"name": "tiny", "dtype": dtype, "input_size": 36, "output_size": 4,
                    "arena_bytes": arena, "layers": LAYERS}
        (d / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
        if dtype == "int8":
            src = INT8_SOURCE.format(
                seed=SEED,
                conv1_w=c_array("int8_t", "conv1_w", c1["w"]),
                conv1_b=c_array("int32_t", "conv1_b", folded(c1["b"], c1["w"], p["input"]["zero_point"])),
                conv1_m=c_array("int32_t", "conv1_m", c1["mult"]), conv1_s=c_array("int8_t", "conv1_s", c1["shift"]),
                fc1_w=c_array("int8_t", "fc1_w", f1["w"]),
                fc1_b=c_array("int32_t", "fc1_b", folded(f1["b"], f1["w"], c1["z_out"])),
                fc1_m=c_array("int32_t", "fc1_m", f1["mult"]), fc1_s=c_array("int8_t", "fc1_s", f1["shift"]),
            )
        else:
            src = F32_SOURCE.format(
                seed=SEED,
                conv1_w=c_array("float", "conv1_w", c1["w_f32"]), conv1_b=c_array("float", "conv1_b", c1["b_f32"]),
                fc1_w=c_array("float", "fc1_w", f1["w_f32"]), fc1_b=c_array("float", "fc1_b", f1["b_f32"]),
            )
        (d / "tiny.c").write_text(src)


if __name__ == "__main__":
    main()

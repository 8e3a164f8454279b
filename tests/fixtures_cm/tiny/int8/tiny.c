/* tiny: hand-written test fixture for torch2mcu.targets.cortex_m (int8).
 * Written by tests/fixtures_cm/make_tiny.py from seed 1234. */
#include "tiny.h"

#ifndef T2M_LAYER_MARK
#define T2M_LAYER_MARK(i) ((void)0)
#endif

/* Activations: conv1 output at 0 (2x6x6), pool1 output at 72 (2x3x3), conv1's padded input
 * copy at 92 (1x8x8). */
static int8_t tiny_arena[TINY_ARENA_BYTES];

static const t2m_pad_shape conv1_pad = {1, 6, 6, 8, 8, 1, 1};

/* conv1: conv2d 1x6x6 -> 2x6x6, k 3x3, stride 1, pad 1, ReLU; in (0.05, -3) out (0.04, -128) */
static const int8_t conv1_w[18] = {-70, 3, 32, 7, 38, 127, -64, 41, -73, 20, -30, 78, -51, 31, -74, -127, 26, 102};
static const int32_t conv1_b[2] = {236, -370};
static const int32_t conv1_m[2] = {1576272896, 1168306304};
static const int8_t conv1_s[2] = {-6, -6};
/* the kernel reads the padded 8x8 copy; conv1_b is the bias with the zero point folded in */
static const t2m_conv_shape conv1_shape = {1, 8, 8, 2, 6, 6, 3, 3, 1, 1, 0, 0, 1, 1, 1, 1, 1};
static const t2m_requant_s8 conv1_q = {-128, -128, 127, conv1_m, conv1_s, 0};

/* pool1: maxpool2d 2x6x6 -> 2x3x3, k 2x2, stride 2 */
static const t2m_pool_shape pool1_shape = {2, 6, 6, 3, 3, 2, 2, 2, 2, 0, 0, 0, 0};

/* fc1: fully connected 18 -> 4; in (0.04, -128) out (0.1, 5) */
static const int8_t fc1_w[72] = {14, 39, 61, -59, 35, 18, -2, 1, -35, -32, 68, 13, -25, -127, -45, -26, -65, -68, 61, -18, -126, -99, -22, 83, -112, 118, -36, -127, 38, 107, -16, 48, -24, -1, 124, 66, -55, 127, -46, 38, 23, -4, 9, -7, 38, -32, -53, 22, 79, -6, 77, -4, 71, 44, 23, 41, -37, 4, -69, -78, 40, -7, 44, 6, -34, 127, 60, 8, 1, 73, -14, 67};
static const int32_t fc1_b[4] = {-29802, 7374, 41369, 33049};
static const int32_t fc1_m[4] = {1294370816, 1777678720, 1454278400, 1503460480};
static const int8_t fc1_s[4] = {-8, -9, -8, -8};
static const t2m_fc_shape fc1_shape = {18, 4};
static const t2m_requant_s8 fc1_q = {5, -128, 127, fc1_m, fc1_s, 0};

t2m_status tiny_run(const int8_t *input, int8_t *output)
{
    if (input == NULL || output == NULL) {
        return T2M_ERR_NULL_ARGUMENT;
    }
    T2M_LAYER_MARK(0);
    t2m_pad_s8(&conv1_pad, -3, input, tiny_arena + 92);
    t2m_conv2d_rows_s8(&conv1_shape, &conv1_q, tiny_arena + 92, conv1_w, conv1_b, tiny_arena + 0);
    T2M_LAYER_MARK(1);
    t2m_maxpool2d_s8(&pool1_shape, -128, 127, tiny_arena + 0, tiny_arena + 72);
    T2M_LAYER_MARK(2);
    t2m_fc_s8(&fc1_shape, &fc1_q, tiny_arena + 72, fc1_w, fc1_b, output);
    T2M_LAYER_MARK(3);
    return T2M_OK;
}

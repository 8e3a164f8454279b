/* The specialized 3x3 depthwise conv kernel (t2m_dwconv_fast_s8.c); the generated C includes this
 * after t2m.h. */
#ifndef T2M_DWCONV_FAST_H
#define T2M_DWCONV_FAST_H

#include "t2m.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The specialized 3x3 depthwise conv on the unpadded input (the generator picks it when
 * it has proved |acc| < 2^30 for every output, and -22 <= shift <= -1 for every channel; see
 * t2m_rq_fast in t2m_dot.h). pad_h / pad_w of the shape are the top / left padding, done by the
 * kernel.
 * t2m_conv2d_dw3x3_s8: 3x3 depthwise (groups == in_c == out_c), no dilation, no fused pool;
 *   weights (out_c, 1, 3, 3); pad_value is the input zero point. scratch: 4-byte aligned,
 *   t2m_conv2d_dw3x3_s8_scratch_bytes(shape) bytes (none for an unpadded layer at least two
 *   outputs wide, which is read in place): a slack word and one channel's padded plane, rows of
 *   t2m_conv2d_dw3x3_s8_pitch bytes.
 */
static inline int32_t t2m_conv2d_dw3x3_s8_staged(const t2m_conv_shape *shape)
{
    return shape->pad_h > 0 || shape->pad_w > 0 || shape->out_w < 2;
}

/* the padded plane's row pitch: the columns some output reads, rounded up to words */
static inline int32_t t2m_conv2d_dw3x3_s8_pitch(const t2m_conv_shape *shape)
{
    return ((T2M_CAST(int32_t, shape->out_w) - 1) * T2M_CAST(int32_t, shape->stride_w) + 6) / 4 * 4;
}

static inline size_t t2m_conv2d_dw3x3_s8_scratch_bytes(const t2m_conv_shape *shape)
{
    const size_t rows = T2M_CAST(size_t, (shape->out_h - 1) * shape->stride_h + 3);
    if (!t2m_conv2d_dw3x3_s8_staged(shape)) {
        return 0u;
    }
    return 4u + rows * T2M_CAST(size_t, t2m_conv2d_dw3x3_s8_pitch(shape));
}

void t2m_conv2d_dw3x3_s8(const t2m_conv_shape *shape, const t2m_requant_s8 *q,
                         const int8_t *input, const int8_t *weights, const int32_t *bias,
                         int8_t *output, int8_t *scratch, int8_t pad_value);

#ifdef __cplusplus
}
#endif

#endif /* T2M_DWCONV_FAST_H */

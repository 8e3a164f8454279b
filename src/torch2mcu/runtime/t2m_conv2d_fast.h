/* The specialized dense conv kernels of groups 1 (t2m_conv2d_fast_s8.c); the generated C includes
 * this after t2m.h. */
#ifndef T2M_CONV2D_FAST_H
#define T2M_CONV2D_FAST_H

#include "t2m.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Specialized dense convs on the unpadded input (the generator picks them when the shape fits and
 * it has proved |acc| < 2^30 for every output, and -22 <= shift <= -1 for every channel; see
 * t2m_rq_fast in t2m_dot.h). pad_h / pad_w of the shape are the top / left padding, done by the
 * kernel. The depthwise one is in t2m_dwconv_fast.h.
 * t2m_conv2d_1x1_s8: 1x1, groups 1, no padding, no dilation, no fused pool, any stride;
 *   weights as 32-bit words (little-endian bytes): output channels in pairs, the two rows
 *   interleaved in groups of four input channels ([w[o][0..3], w[o+1][0..3], w[o][4..7], ...]),
 *   an odd last channel's row alone; the input channels padded with zeros to cin4 = a multiple
 *   of four. scratch: t2m_conv2d_1x1_s8_scratch_bytes(shape) bytes (4 * cin4). */
static inline size_t t2m_conv2d_1x1_s8_scratch_bytes(const t2m_conv_shape *shape)
{
    return 4u * ((T2M_CAST(size_t, shape->in_c) + 3u) / 4u * 4u);
}

void t2m_conv2d_1x1_s8(const t2m_conv_shape *shape, const t2m_requant_s8 *q,
                       const int8_t *input, const int32_t *weights, const int32_t *bias,
                       int8_t *output, int8_t *scratch);

/* t2m_conv2d_kxk_s8: any k_h x k_w, groups 1, padding and stride any, no dilation, no fused
 *   pool; pad_value is the input zero point. The reduction is R = in_c * k_h * k_w in filter
 *   order (input channel, kernel row, kernel column), padded with zero weights to R4, a multiple
 *   of four. weights as 32-bit words (little-endian bytes): output channels in pairs, the two
 *   rows interleaved in groups of four (row o's group, row o+1's group, ...), an odd last
 *   channel's row alone; inside a group the bytes are w[r], w[r+2], w[r+1], w[r+3].
 *   scratch: 4-byte aligned, t2m_conv2d_kxk_s8_scratch_bytes(shape) bytes (one pixel's field
 *   and two pixels' fields interleaved, as int16). */
static inline size_t t2m_conv2d_kxk_s8_scratch_bytes(const t2m_conv_shape *shape)
{
    size_t r = shape->in_c;
    r = r * shape->k_h * shape->k_w;
    return 6u * ((r + 3u) / 4u * 4u);
}

void t2m_conv2d_kxk_s8(const t2m_conv_shape *shape, const t2m_requant_s8 *q,
                       const int8_t *input, const int32_t *weights, const int32_t *bias,
                       int8_t *output, int8_t *scratch, int8_t pad_value);

/* The same two convs over block-sparse weights (format blk2, t2m_sparse_s8): per pair of output
 *   channels (row_len[pair] blocks; an odd last channel's pair holds zeros for the missing row),
 *   the blocks of 2 rows x 4 positions of the reduction holding a nonzero weight: index[b]
 *   (uint8_t) the block's group minus the previous block's (the pair's first from group 0;
 *   longer gaps bridged by all-zero filler blocks), values two little-endian words of four int8
 *   per block (4-byte aligned), the pair's first row then its second, bytes as the dense
 *   kernel's words. Same shapes, scratch and pad_value as the dense kernels. */
void t2m_conv2d_1x1_blk2_s8(const t2m_conv_shape *shape, const t2m_requant_s8 *q,
                            const t2m_sparse_s8 *weights, const int8_t *input,
                            const int32_t *bias, int8_t *output, int8_t *scratch);
void t2m_conv2d_kxk_blk2_s8(const t2m_conv_shape *shape, const t2m_requant_s8 *q,
                            const t2m_sparse_s8 *weights, const int8_t *input,
                            const int32_t *bias, int8_t *output, int8_t *scratch,
                            int8_t pad_value);

#ifdef __cplusplus
}
#endif

#endif /* T2M_CONV2D_FAST_H */

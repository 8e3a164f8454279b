/* The sparse conv whose every stored weight feeds eight output pixels with four 64-bit
 * multiply-accumulates (t2m_conv2d_lanes_s8.c); the generated C includes this after t2m.h. */
#ifndef T2M_CONV2D_LANES_H
#define T2M_CONV2D_LANES_H

#include "t2m.h"

#ifdef __cplusplus
extern "C" {
#endif

/* t2m_conv2d_lanes32_s8 / _lanes16_s8 / _lanes8_s8: groups 1, any kernel, stride, padding and
 * dilation; a fused max-pool only 2x2. The shape is the unpadded input's, out_h x out_w the conv
 * outputs computed (with a pool, the ones its windows read); pad_value is the input zero point.
 *
 * The kernel works on bands of two output rows and band_blocks blocks of four output columns
 * (1 <= band_blocks <= ceil(out_w / 4); fewer blocks per band take less scratch and repack
 * the columns the blocks' windows share). For each band it packs the input rows and columns
 * those outputs read into int32 words X = x + (x' << 23), x the input of output row 2b and x'
 * the input one stride lower (of row 2b + 1), so one SMLAL (64-bit multiply-accumulate) adds
 * w * x to the low 23 bits and w * x' to the bits above: two MACs. Band layout, in words:
 * [input channel][band row, (k_h - 1) * dilation_h + 1 of them][column phase, stride_w of
 * them][mw], where phase f, word m holds input column (c0 + m) * stride_w + f - pad_w for the
 * band's first output column c0 (padding and columns past the input: the zero point),
 * mw = 4 * band_blocks + (k_w - 1) * dilation_w / stride_w.
 *
 * Every output channel's row of weights is a run of entries, one per nonzero weight (an
 * all-zero row: one entry of weight 0), ordered by their word offset in the band; each holds the
 * increase of that offset over the previous entry's (the first counts from the block's first
 * word), a flag on the row's last entry and the int8 weight:
 *   lanes32 (uint32_t): bits 0-15 the increase in bytes, bit 23 the flag, bits 24-31 the weight;
 *   lanes16 (uint16_t): bits 0-6 the increase in words, bit 7 the flag, bits 8-15 the weight (a
 *                       gap over 127 words is bridged by entries of weight 0 and no flag);
 *   lanes8 (uint8_t):   bits 0-3 the increase in words (1 to 15; the first counts from the word
 *                       before the block's first; longer gaps are bridged by entries of step
 *                       15 and weight 0), bits 4-7 the top nibble of the weight (a multiple
 *                       of 16); no flag: a row ends with an entry 0 (an all-zero row is the
 *                       entry 0x01 and that end).
 * One extra entry (0) ends the array. The weight of tap (c, ky, kx) sits at word offset
 * ((c * band_rows + ky * dilation_h) * stride_w + (kx * dilation_w) % stride_w) * mw
 * + (kx * dilation_w) / stride_w from the first word of a four-column block.
 * The generator guarantees 128 * sum|w| < 2^22 for every row (the low lane cannot carry into
 * the high one), |bias| + 128 * sum|w| < 2^30 and -22 <= shift <= -1 (t2m_rq_fast).
 * scratch: 4-byte aligned, t2m_conv2d_lanes_s8_scratch_bytes(shape, band_blocks) bytes (one
 * band and its blocks' sums). */
static inline int32_t t2m_conv2d_lanes_mw(const t2m_conv_shape *shape, int32_t band_blocks)
{
    const int32_t dw = shape->dilation_w > 1 ? shape->dilation_w : 1;
    const int32_t span = ((int32_t)shape->k_w - 1) * dw;
    return 4 * band_blocks + span / shape->stride_w;
}

static inline int32_t t2m_conv2d_lanes_band_rows(const t2m_conv_shape *shape)
{
    return ((int32_t)shape->k_h - 1) * (shape->dilation_h > 1 ? shape->dilation_h : 1) + 1;
}

static inline int32_t t2m_conv2d_lanes_band_words(const t2m_conv_shape *shape, int32_t band_blocks)
{
    return (int32_t)shape->in_c * t2m_conv2d_lanes_band_rows(shape) * (int32_t)shape->stride_w
           * t2m_conv2d_lanes_mw(shape, band_blocks);
}

static inline size_t t2m_conv2d_lanes_s8_scratch_bytes(const t2m_conv_shape *shape,
                                                       int32_t band_blocks)
{
    return 4u * ((size_t)t2m_conv2d_lanes_band_words(shape, band_blocks)
                 + 8u * (size_t)band_blocks);
}

void t2m_conv2d_lanes32_s8(const t2m_conv_shape *shape, const t2m_requant_s8 *q,
                           const uint32_t *entries, const int8_t *input, const int32_t *bias,
                           int8_t *output, int32_t *scratch, int8_t pad_value,
                           int32_t band_blocks);
void t2m_conv2d_lanes16_s8(const t2m_conv_shape *shape, const t2m_requant_s8 *q,
                           const uint16_t *entries, const int8_t *input, const int32_t *bias,
                           int8_t *output, int32_t *scratch, int8_t pad_value,
                           int32_t band_blocks);
void t2m_conv2d_lanes8_s8(const t2m_conv_shape *shape, const t2m_requant_s8 *q,
                          const uint8_t *entries, const int8_t *input, const int32_t *bias,
                          int8_t *output, int32_t *scratch, int8_t pad_value, int32_t band_blocks);

#ifdef __cplusplus
}
#endif

#endif /* T2M_CONV2D_LANES_H */

/* Fully connected int8 layer with codebook-coded weights (t2m_cbsparse_s8 in t2m.h): the bit
 * stream is walked in place, one entry per stored weight; each entry's code selects its int8
 * weight from the codebook and its gap advances the input position. The generator guarantees
 * that every position stays inside the input, that row_len covers the stream exactly and that
 * the stream ends with one byte of padding (the walk refills 16 bits at a time), so the walk
 * never reads outside either. Each input is read as x - z (input_offset = -z), so the bias is
 * the layer's own; the sums equal t2m_fc_s8's (folded bias, raw inputs) on the decoded
 * weights, term for term. */
#include "t2m_dot.h"

/* One row: n entries from the bit buffer (*buf, *nb valid bits, at most width + 15 <= 31). */
static T2M_ALWAYS_INLINE int32_t t2m_cb_row(const uint8_t **stream, uint32_t *buf_io,
                                             uint32_t *nb_io, int32_t n, const int8_t *x,
                                             const int8_t *codebook, const uint32_t code_bits,
                                             const uint32_t width, const int32_t offset,
                                             int32_t acc)
{
    const uint8_t *p = *stream;
    const uint32_t code_mask = (1u << code_bits) - 1u;
    const uint32_t entry_mask = (1u << width) - 1u;
    uint32_t buf = *buf_io, nb = *nb_io;
    while (n-- > 0) {
        uint32_t e;
        if (nb < width) {
            buf |= ((uint32_t)p[0] | ((uint32_t)p[1] << 8)) << nb;
            p += 2;
            nb += 16;
        }
        e = buf & entry_mask;
        buf >>= width;
        nb -= width;
        x += e >> code_bits;                      /* the gap */
        acc += (int32_t)codebook[e & code_mask] * ((int32_t)*x++ + offset);
    }
    *stream = p;
    *buf_io = buf;
    *nb_io = nb;
    return acc;
}

void t2m_fc_cb_s8(const t2m_fc_shape *shape, const t2m_requant_s8 *q,
                  const t2m_cbsparse_s8 *weights, const int8_t *input, int8_t *output)
{
    const uint8_t *p = weights->stream;
    const int8_t *codebook = weights->codebook;
    const uint32_t code_bits = weights->code_bits;
    const uint32_t width = code_bits + weights->gap_bits;
    const uint8_t *len8 = (const uint8_t *)weights->row_len;
    const uint16_t *len16 = (const uint16_t *)weights->row_len;
    const int16_t *bias16 = (const int16_t *)weights->bias;
    const int32_t *bias32 = (const int32_t *)weights->bias;
    const int wide = weights->row_len_bytes != 1, short_bias = weights->bias_bytes == 2;
    const int32_t offset = weights->input_offset;
    uint32_t buf = 0, nb = 0;
    int32_t o;
    for (o = 0; o < shape->out_features; ++o) {
        const int32_t n = wide ? (int32_t)len16[o] : (int32_t)len8[o];
        const int32_t b = short_bias ? (int32_t)bias16[o] : bias32[o];
        int32_t acc;
        acc = t2m_cb_row(&p, &buf, &nb, n, input, codebook, code_bits, width, offset, b);
        output[o] = t2m_requantize_s8(acc, q, o);
    }
}

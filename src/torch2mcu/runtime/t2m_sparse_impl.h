/* The sparse conv and fully connected kernels, written once and instantiated per index kind:
 * a file defines T2M_SPARSE_CONV, T2M_SPARSE_FC (the function names), T2M_INDEX_T (the index
 * entry type) and T2M_NEXT_OFFSET(off, ix, k) (the offset of entry k), then includes this file.
 *
 * Only nonzero weights are stored and the kernels walk them in place. Every index is an offset
 * inside the receptive field of the current output, so no walk can leave the input, whatever
 * the pattern of zeros; row_len bounds every row, so empty rows and all-zero layers read
 * nothing. Results equal the dense kernels exactly: the same integer sums in another order. */
#include "t2m_dot.h"

/* Four adjacent output pixels per pass over a row: each weight and index is loaded once and
 * used four times. p0 is the window origin of the first pixel, s the input step between them.
 * At stride 1 the four inputs are adjacent bytes: one word load, split into sign-extended
 * halfword pairs (SXTB16), feeds four 16x16 multiply-accumulates where the core has DSP. */
static void t2m_row4(const int8_t *v, const T2M_INDEX_T *ix, int32_t n, const int8_t *p0, int32_t s,
                     int32_t *acc)
{
    int32_t a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];
    int32_t off = 0;
    int32_t k;
    if (s == 1) {
        for (k = 0; k < n; ++k) {
            const int32_t wv = v[k];
            const int8_t *x;
            T2M_NEXT_OFFSET(off, ix, k);
            x = p0 + off;
#if defined(__ARM_FEATURE_DSP)
            {
                uint32_t w4;
                int32_t even, odd;
                memcpy(&w4, x, 4);
                even = __sxtb16((int32_t)w4);             /* x[0], x[2] */
                odd = __sxtb16((int32_t)((w4 >> 8) | (w4 << 24))); /* x[1], x[3] */
                a0 = __smlabb(wv, even, a0);
                a1 = __smlabb(wv, odd, a1);
                a2 = __smlabt(wv, even, a2);
                a3 = __smlabt(wv, odd, a3);
            }
#else
            a0 += wv * x[0];
            a1 += wv * x[1];
            a2 += wv * x[2];
            a3 += wv * x[3];
#endif
        }
    } else {
        const int8_t *p1 = p0 + s, *p2 = p0 + 2 * s, *p3 = p0 + 3 * s;
        for (k = 0; k < n; ++k) {
            const int32_t wv = v[k];
            T2M_NEXT_OFFSET(off, ix, k);
            a0 += wv * p0[off];
            a1 += wv * p1[off];
            a2 += wv * p2[off];
            a3 += wv * p3[off];
        }
    }
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = a2;
    acc[3] = a3;
}

static int32_t t2m_row1(const int8_t *v, const T2M_INDEX_T *ix, int32_t n, const int8_t *p0,
                        int32_t a0)
{
    int32_t off = 0;
    int32_t k;
    for (k = 0; k < n; ++k) {
        const int32_t wv = v[k];
        T2M_NEXT_OFFSET(off, ix, k);
        a0 += wv * p0[off];
    }
    return a0;
}

/* Keep the running int32 maximum of a pooling window (requantization is monotone, so
 * max-pooling the sums before it gives the same int8 result as after it). */
static void t2m_max_into(int32_t *slot, int32_t acc, int first)
{
    if (first || acc > *slot) {
        *slot = acc;
    }
}

void T2M_SPARSE_CONV(const t2m_conv_shape *shape, const t2m_requant_s8 *q,
                     const t2m_sparse_s8 *weights, const int8_t *input, const int32_t *bias,
                     int8_t *output, int32_t *scratch)
{
    const int32_t in_c_per_group = shape->in_c / shape->groups;
    const int32_t out_c_per_group = shape->out_c / shape->groups;
    const int32_t in_w = shape->in_w;
    const int32_t in_hw = (int32_t)shape->in_h * in_w;
    const int32_t s = shape->stride_w;
    const int32_t pool_h = shape->pool_h > 1 ? shape->pool_h : 1;
    const int32_t pool_w = shape->pool_w > 1 ? shape->pool_w : 1;
    const int32_t pooled_w = shape->out_w / pool_w;
    const T2M_INDEX_T *index = (const T2M_INDEX_T *)weights->index;
    int8_t *out = output;
    size_t pos = 0;
    int32_t oc;

    for (oc = 0; oc < shape->out_c; ++oc) {
        const int32_t n = weights->row_len[oc];
        const int8_t *v = weights->values + pos;
        const T2M_INDEX_T *ix = index + pos;
        const int8_t *in_group = input + (size_t)((oc / out_c_per_group) * in_c_per_group) * (size_t)in_hw;
        const int32_t b = bias[oc];
        int32_t oy;
        for (oy = 0; oy < shape->out_h; ++oy) {
            const int8_t *row = in_group + (size_t)(oy * shape->stride_h) * (size_t)in_w;
            const int first_row = oy % pool_h == 0;
            int32_t *slot = scratch; /* the int32 sums of this output row, pooled */
            int32_t dx = 0;          /* column inside the current pooling window */
            int32_t ox = 0;
            while (ox < shape->out_w) {
                int32_t acc[4];
                int32_t m = shape->out_w - ox >= 4 ? 4 : 1;
                int32_t j;
                if (m == 4) {
                    acc[0] = acc[1] = acc[2] = acc[3] = b;
                    t2m_row4(v, ix, n, row + ox * s, s, acc);
                } else {
                    acc[0] = t2m_row1(v, ix, n, row + ox * s, b);
                }
                for (j = 0; j < m; ++j) {
                    t2m_max_into(slot, acc[j], first_row && dx == 0);
                    if (++dx == pool_w) {
                        dx = 0;
                        ++slot;
                    }
                }
                ox += m;
            }
            if (oy % pool_h == pool_h - 1) { /* the (pooled) output row is complete */
                int32_t px;
                for (px = 0; px < pooled_w; ++px) {
                    *out++ = t2m_requantize_s8(scratch[px], q, oc);
                }
            }
        }
        pos += (size_t)n;
    }
}

void T2M_SPARSE_FC(const t2m_fc_shape *shape, const t2m_requant_s8 *q,
                   const t2m_sparse_s8 *weights, const int8_t *input, const int32_t *bias,
                   int8_t *output)
{
    const T2M_INDEX_T *index = (const T2M_INDEX_T *)weights->index;
    size_t pos = 0;
    int32_t o;
    for (o = 0; o < shape->out_features; ++o) {
        const int32_t n = weights->row_len[o];
        output[o] = t2m_requantize_s8(t2m_row1(weights->values + pos, index + pos, n, input, bias[o]),
                                      q, o);
        pos += (size_t)n;
    }
}

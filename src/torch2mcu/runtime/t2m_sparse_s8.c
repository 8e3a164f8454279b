/* Sparse int8 conv and fully connected kernels: only nonzero weights are stored, and the kernels
 * walk them in place (see t2m_sparse_s8 in t2m.h). Every index is an offset inside the
 * receptive field of the current output, so no walk can leave the input, whatever the pattern
 * of zeros; row_len bounds every row, so empty rows and all-zero layers read nothing.
 * Results equal the dense kernels exactly: the same integer sums in another order. */
#include "t2m_dot.h"

/* Four adjacent output pixels per pass over a row: each weight and index is loaded once and
 * used four times. p0 is the window origin of the first pixel, s the input step between them. */
#define T2M_WALK4(NEXT_OFFSET)                                                   \
    do {                                                                         \
        int32_t k;                                                               \
        int32_t off = 0;                                                         \
        (void)off;                                                               \
        for (k = 0; k < n; ++k) {                                                \
            const int32_t wv = v[k];                                             \
            NEXT_OFFSET;                                                         \
            a0 += wv * p0[off];                                                  \
            a1 += wv * p1[off];                                                  \
            a2 += wv * p2[off];                                                  \
            a3 += wv * p3[off];                                                  \
        }                                                                        \
    } while (0)

#define T2M_WALK1(NEXT_OFFSET)                                                   \
    do {                                                                         \
        int32_t k;                                                               \
        int32_t off = 0;                                                         \
        (void)off;                                                               \
        for (k = 0; k < n; ++k) {                                                \
            const int32_t wv = v[k];                                             \
            NEXT_OFFSET;                                                         \
            a0 += wv * p0[off];                                                  \
        }                                                                        \
    } while (0)

#define T2M_CSR8 off = ix8[k]
#define T2M_CSR16 off = ix16[k]
#define T2M_REL off += ix8[k]

static void t2m_row4(const t2m_sparse_s8 *w, const int8_t *v, size_t pos, int32_t n,
                     const int8_t *p0, int32_t s, int32_t *acc)
{
    const uint8_t *ix8 = (const uint8_t *)w->index + pos;
    const uint16_t *ix16 = (const uint16_t *)w->index + pos;
    const int8_t *p1 = p0 + s, *p2 = p0 + 2 * s, *p3 = p0 + 3 * s;
    int32_t a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];
    if (w->kind == T2M_SPARSE_REL) {
        T2M_WALK4(T2M_REL);
    } else if (w->index_bytes == 1) {
        T2M_WALK4(T2M_CSR8);
    } else {
        T2M_WALK4(T2M_CSR16);
    }
    (void)ix16;
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = a2;
    acc[3] = a3;
}

static int32_t t2m_row1(const t2m_sparse_s8 *w, const int8_t *v, size_t pos, int32_t n,
                        const int8_t *p0, int32_t a0)
{
    const uint8_t *ix8 = (const uint8_t *)w->index + pos;
    const uint16_t *ix16 = (const uint16_t *)w->index + pos;
    if (w->kind == T2M_SPARSE_REL) {
        T2M_WALK1(T2M_REL);
    } else if (w->index_bytes == 1) {
        T2M_WALK1(T2M_CSR8);
    } else {
        T2M_WALK1(T2M_CSR16);
    }
    (void)ix16;
    return a0;
}

void t2m_conv2d_sparse_s8(const t2m_conv_shape *shape, const t2m_requant_s8 *q,
                          const t2m_sparse_s8 *weights, const int8_t *input, const int32_t *bias,
                          int8_t *output)
{
    const int32_t in_c_per_group = shape->in_c / shape->groups;
    const int32_t out_c_per_group = shape->out_c / shape->groups;
    const int32_t in_w = shape->in_w;
    const int32_t in_hw = (int32_t)shape->in_h * in_w;
    const int32_t s = shape->stride_w;
    const int32_t pool_h = shape->pool_h > 1 ? shape->pool_h : 1;
    const int32_t pool_w = shape->pool_w > 1 ? shape->pool_w : 1;
    const int32_t pooled_w = shape->out_w / pool_w;
    const int32_t pooled_hw = (shape->out_h / pool_h) * pooled_w;
    size_t pos = 0;
    int32_t oc;

    for (oc = 0; oc < shape->out_c; ++oc) {
        const int32_t n = weights->row_len[oc];
        const int8_t *v = weights->values + pos;
        const int8_t *in_group = input + (size_t)((oc / out_c_per_group) * in_c_per_group) * (size_t)in_hw;
        const int32_t b = bias[oc];
        int32_t oy;
        for (oy = 0; oy < shape->out_h; ++oy) {
            const int8_t *row = in_group + (size_t)(oy * shape->stride_h) * (size_t)in_w;
            int8_t *out = output + (size_t)oc * (size_t)pooled_hw + (size_t)(oy / pool_h) * (size_t)pooled_w;
            const int first_row = oy % pool_h == 0;
            int32_t dx = 0; /* column inside the current pooling window */
            int32_t ox = 0;
            for (; ox + 4 <= shape->out_w; ox += 4) {
                int32_t acc[4];
                int32_t j;
                acc[0] = acc[1] = acc[2] = acc[3] = b;
                t2m_row4(weights, v, pos, n, row + ox * s, s, acc);
                for (j = 0; j < 4; ++j) {
                    t2m_store_pooled(out, t2m_requantize_s8(acc[j], q, oc), first_row && dx == 0);
                    if (++dx == pool_w) {
                        dx = 0;
                        ++out;
                    }
                }
            }
            for (; ox < shape->out_w; ++ox) {
                t2m_store_pooled(out, t2m_requantize_s8(t2m_row1(weights, v, pos, n, row + ox * s, b), q, oc),
                                 first_row && dx == 0);
                if (++dx == pool_w) {
                    dx = 0;
                    ++out;
                }
            }
        }
        pos += (size_t)n;
    }
}

void t2m_fc_sparse_s8(const t2m_fc_shape *shape, const t2m_requant_s8 *q,
                      const t2m_sparse_s8 *weights, const int8_t *input, const int32_t *bias,
                      int8_t *output)
{
    size_t pos = 0;
    int32_t o;
    for (o = 0; o < shape->out_features; ++o) {
        const int32_t n = weights->row_len[o];
        output[o] = t2m_requantize_s8(t2m_row1(weights, weights->values + pos, pos, n, input, bias[o]),
                                      q, o);
        pos += (size_t)n;
    }
}

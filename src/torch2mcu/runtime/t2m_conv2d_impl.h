/* The dense int8 conv kernels, written once and instantiated with and without dilation: a
 * file defines T2M_CONV_ROWS and T2M_CONV_COLS (the function names) and T2M_DILATED (0: taps
 * adjacent, the constants fold away; 1: dilation_h / dilation_w of the shape), then includes
 * this file. Same integers as TFLM reference_integer_ops::ConvPerChannel and
 * DepthwiseConvPerChannel: the input zero point is folded into the bias, and padded borders hold
 * the zero point. */
#include "t2m_dot.h"

#if T2M_DILATED
#define T2M_DILATION_H (shape->dilation_h > 1 ? (int32_t)shape->dilation_h : 1)
#define T2M_DILATION_W (shape->dilation_w > 1 ? (int32_t)shape->dilation_w : 1)

/* acc + sum(f[i] * x[i * step]) for i < n: one kernel row whose taps are `step` apart. */
static int32_t t2m_dot_step_s8(const int8_t *f, const int8_t *x, int32_t n, int32_t step,
                               int32_t acc)
{
    int32_t i;
    for (i = 0; i < n; ++i) {
        acc += (int32_t)f[i] * (int32_t)x[i * step];
    }
    return acc;
}
#else
#define T2M_DILATION_H 1
#define T2M_DILATION_W 1
#define t2m_dot_step_s8(f, x, n, step, acc) (acc) /* never reached: tap_step is 1 */
#endif

/* One output per (channel, pixel), walking kernel rows in place: for depthwise-like layers,
 * where a gathered window would serve a single output channel. */
void T2M_CONV_ROWS(const t2m_conv_shape *shape, const t2m_requant_s8 *q,
                   const int8_t *input, const int8_t *weights, const int32_t *bias,
                   int8_t *output)
{
    const int32_t in_c_per_group = shape->in_c / shape->groups;
    const int32_t out_c_per_group = shape->out_c / shape->groups;
    const int32_t in_w = shape->in_w;
    const int32_t in_hw = (int32_t)shape->in_h * in_w;
    const int32_t k_h = shape->k_h, k_w = shape->k_w;
    const int32_t filter_size = in_c_per_group * k_h * k_w;
    const int32_t pool_h = shape->pool_h > 1 ? shape->pool_h : 1;
    const int32_t pool_w = shape->pool_w > 1 ? shape->pool_w : 1;
    const int32_t pooled_w = shape->out_w / pool_w;
    const int32_t pooled_hw = (shape->out_h / pool_h) * pooled_w;
    const int32_t row_step = T2M_DILATION_H * in_w; /* input step between kernel rows */
    const int32_t tap_step = T2M_DILATION_W;        /* input step between kernel columns */
    int32_t oc;

    for (oc = 0; oc < shape->out_c; ++oc) {
        const int8_t *filter = weights + (size_t)oc * (size_t)filter_size;
        const int8_t *in_group = input + (size_t)((oc / out_c_per_group) * in_c_per_group) * (size_t)in_hw;
        int32_t oy;
        for (oy = 0; oy < shape->out_h; ++oy) {
            const int8_t *in_row0 = in_group + (size_t)(oy * shape->stride_h) * (size_t)in_w;
            int8_t *out = output + (size_t)oc * (size_t)pooled_hw + (size_t)(oy / pool_h) * (size_t)pooled_w;
            const int first_row = oy % pool_h == 0;
            int32_t dx = 0; /* column inside the current pooling window */
            int32_t ox;
            for (ox = 0; ox < shape->out_w; ++ox) {
                const int8_t *window = in_row0 + ox * shape->stride_w;
                const int8_t *f = filter;
                int32_t acc = bias[oc];
                int32_t ic;
                for (ic = 0; ic < in_c_per_group; ++ic) {
                    const int8_t *in_ch = window + (size_t)ic * (size_t)in_hw;
                    int32_t ky;
                    for (ky = 0; ky < k_h; ++ky) {
                        acc = tap_step == 1 ? t2m_dot_s8(f, in_ch + ky * row_step, k_w, acc)
                                            : t2m_dot_step_s8(f, in_ch + ky * row_step, k_w,
                                                              tap_step, acc);
                        f += k_w;
                    }
                }
                t2m_store_pooled(out, t2m_requantize_s8(acc, q, oc), first_row && dx == 0);
                if (++dx == pool_w) {
                    dx = 0;
                    ++out;
                }
            }
        }
    }
}

void T2M_CONV_COLS(const t2m_conv_shape *shape, const t2m_requant_s8 *q,
                   const int8_t *input, const int8_t *weights, const int32_t *bias,
                   int8_t *output, int8_t *scratch)
{
    const int32_t in_c_per_group = shape->in_c / shape->groups;
    const int32_t out_c_per_group = shape->out_c / shape->groups;
    const int32_t in_w = shape->in_w;
    const int32_t in_hw = (int32_t)shape->in_h * in_w;
    const int32_t k_h = shape->k_h, k_w = shape->k_w;
    const int32_t filter_size = in_c_per_group * k_h * k_w;
    const int32_t pool_h = shape->pool_h > 1 ? shape->pool_h : 1;
    const int32_t pool_w = shape->pool_w > 1 ? shape->pool_w : 1;
    const int32_t pooled_h = shape->out_h / pool_h;
    const int32_t pooled_w = shape->out_w / pool_w;
    const int32_t window = pool_h * pool_w;
    const int32_t row_step = T2M_DILATION_H * in_w;
    const int32_t tap_step = T2M_DILATION_W;
    int32_t g;

    /* Per output position: gather the receptive field of each conv pixel of its pooling window
     * into contiguous columns (filter order); then per output channel, long dot products over
     * the columns, the max of the int32 sums (requantization is monotone, so max-pooling before
     * it gives the same int8 result), and one requantization. */
    for (g = 0; g < shape->groups; ++g) {
        const int8_t *in_group = input + (size_t)(g * in_c_per_group) * (size_t)in_hw;
        const int32_t oc0 = g * out_c_per_group;
        int32_t py;
        for (py = 0; py < pooled_h; ++py) {
            int32_t px;
            for (px = 0; px < pooled_w; ++px) {
                int8_t *col = scratch;
                int32_t j, oc;
                for (j = 0; j < window; ++j) {
                    const int32_t oy = py * pool_h + j / pool_w, ox = px * pool_w + j % pool_w;
                    const int8_t *origin = in_group + (size_t)(oy * shape->stride_h) * (size_t)in_w +
                                           (size_t)(ox * shape->stride_w);
                    int32_t ic;
                    for (ic = 0; ic < in_c_per_group; ++ic) {
                        const int8_t *in_ch = origin + (size_t)ic * (size_t)in_hw;
                        int32_t ky;
                        for (ky = 0; ky < k_h; ++ky) {
                            const int8_t *src = in_ch + ky * row_step;
                            int32_t kx;
                            for (kx = 0; kx < k_w; ++kx) {
                                *col++ = src[kx * tap_step];
                            }
                        }
                    }
                }
                for (oc = oc0; oc < oc0 + out_c_per_group; ++oc) {
                    const int8_t *filter = weights + (size_t)oc * (size_t)filter_size;
                    int32_t best = t2m_dot_s8(filter, scratch, filter_size, bias[oc]);
                    for (j = 1; j < window; ++j) {
                        const int32_t acc = t2m_dot_s8(filter, scratch + (size_t)j * (size_t)filter_size,
                                                       filter_size, bias[oc]);
                        best = acc > best ? acc : best;
                    }
                    output[((size_t)oc * (size_t)pooled_h + (size_t)py) * (size_t)pooled_w + (size_t)px] =
                        t2m_requantize_s8(best, q, oc);
                }
            }
        }
    }
}

#undef T2M_DILATION_H
#undef T2M_DILATION_W

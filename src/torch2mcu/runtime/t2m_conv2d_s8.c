/* Dense int8 2-D convolution, any kernel, stride, padding and group count
 * (depthwise and channel multipliers included). Arithmetic: TFLM
 * reference_integer_ops::ConvPerChannel. */
#include "t2m.h"

void t2m_conv2d_s8(const t2m_conv_shape *shape, const t2m_requant_s8 *q,
                   const int8_t *input, const int8_t *weights, const int32_t *bias,
                   int8_t *output)
{
    const int32_t in_c_per_group = shape->in_c / shape->groups;
    const int32_t out_c_per_group = shape->out_c / shape->groups;
    const int32_t in_hw = (int32_t)shape->in_h * shape->in_w;
    const int32_t filter_size = in_c_per_group * shape->k_h * shape->k_w;
    int32_t oc;

    for (oc = 0; oc < shape->out_c; ++oc) {
        const int32_t group = oc / out_c_per_group;
        const int8_t *filter = weights + (size_t)oc * (size_t)filter_size;
        const int8_t *in_group = input + (size_t)(group * in_c_per_group) * (size_t)in_hw;
        const int32_t b = bias != NULL ? bias[oc] : 0;
        int32_t oy;
        for (oy = 0; oy < shape->out_h; ++oy) {
            const int32_t iy0 = oy * shape->stride_h - shape->pad_h;
            /* The rows of the window that fall inside the input. */
            const int32_t ky_lo = iy0 < 0 ? -iy0 : 0;
            const int32_t ky_hi = iy0 + shape->k_h > shape->in_h ? shape->in_h - iy0 : shape->k_h;
            int32_t ox;
            for (ox = 0; ox < shape->out_w; ++ox) {
                const int32_t ix0 = ox * shape->stride_w - shape->pad_w;
                const int32_t kx_lo = ix0 < 0 ? -ix0 : 0;
                const int32_t kx_hi = ix0 + shape->k_w > shape->in_w ? shape->in_w - ix0 : shape->k_w;
                int32_t acc = b;
                int32_t ic;
                for (ic = 0; ic < in_c_per_group; ++ic) {
                    const int8_t *in_ch = in_group + (size_t)ic * (size_t)in_hw;
                    const int8_t *f_ch = filter + (size_t)ic * shape->k_h * shape->k_w;
                    int32_t ky;
                    for (ky = ky_lo; ky < ky_hi; ++ky) {
                        const int8_t *in_row = in_ch + (size_t)(iy0 + ky) * shape->in_w + ix0;
                        const int8_t *f_row = f_ch + (size_t)ky * shape->k_w;
                        int32_t kx;
                        for (kx = kx_lo; kx < kx_hi; ++kx) {
                            acc += (int32_t)f_row[kx] * ((int32_t)in_row[kx] + q->input_offset);
                        }
                    }
                }
                acc = t2m_requantize(acc, q->multiplier[oc], q->shift[oc]) + q->output_offset;
                output[((size_t)oc * shape->out_h + (size_t)oy) * shape->out_w + (size_t)ox] =
                    (int8_t)t2m_clamp_i32(acc, q->act_min, q->act_max);
            }
        }
    }
}

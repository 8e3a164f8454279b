/* int8 transposed 2-D convolution: the integers of TFLM reference_integer_ops::TransposeConv,
 * gathered per output instead of scattered through an int32 scratch image.
 *
 * Output row oy is reached by taps ky with oy + pad_h = iy * stride_h + ky, that is
 * ky = (oy + pad_h) mod stride_h, then every stride_h-th tap, each one input row higher; the
 * same holds for columns. Only taps whose input row and column exist are visited, so the work
 * is exactly the multiply-adds that contribute. */
#include "t2m_conv_transpose2d.h"
#include "t2m_dot.h"

void t2m_conv_transpose2d_s8(const t2m_conv_transpose_shape *shape, const t2m_requant_s8 *q,
                             int32_t input_offset, const int8_t *input, const int8_t *weights,
                             const int32_t *bias, int8_t *output)
{
    const int32_t in_c_per_group = shape->in_c / shape->groups;
    const int32_t out_c_per_group = shape->out_c / shape->groups;
    const int32_t in_h = shape->in_h, in_w = shape->in_w;
    const int32_t in_hw = in_h * in_w;
    const int32_t k_h = shape->k_h, k_w = shape->k_w;
    const int32_t k_hw = k_h * k_w;
    const int32_t stride_h = shape->stride_h, stride_w = shape->stride_w;
    int32_t oc;

    for (oc = 0; oc < shape->out_c; ++oc) {
        const int8_t *filter = weights + (size_t)oc * (size_t)(in_c_per_group * k_hw);
        const int8_t *in_group =
            input + (size_t)((oc / out_c_per_group) * in_c_per_group) * (size_t)in_hw;
        const int32_t b = bias != NULL ? bias[oc] : 0;
        int8_t *out = output + (size_t)oc * shape->out_h * shape->out_w;
        int32_t oy;
        for (oy = 0; oy < shape->out_h; ++oy) {
            const int32_t ty = oy + shape->pad_h; /* iy * stride_h + ky */
            const int32_t ky0 = ty % stride_h;
            int32_t ox;
            for (ox = 0; ox < shape->out_w; ++ox) {
                const int32_t tx = ox + shape->pad_w; /* ix * stride_w + kx */
                const int32_t kx0 = tx % stride_w;
                int32_t acc = 0;
                int32_t ky, iy;
                for (ky = ky0, iy = (ty - ky0) / stride_h; ky < k_h && iy >= 0;
                     ky += stride_h, --iy) {
                    int32_t kx, ix;
                    if (iy >= in_h) {
                        continue;
                    }
                    for (kx = kx0, ix = (tx - kx0) / stride_w; kx < k_w && ix >= 0;
                         kx += stride_w, --ix) {
                        const int8_t *x = in_group + iy * in_w + ix;
                        const int8_t *f = filter + ky * k_w + kx;
                        int32_t ic;
                        if (ix >= in_w) {
                            continue;
                        }
                        for (ic = 0; ic < in_c_per_group; ++ic) {
                            acc += ((int32_t)x[(size_t)ic * (size_t)in_hw] + input_offset) *
                                   (int32_t)f[(size_t)ic * (size_t)k_hw];
                        }
                    }
                }
                *out++ = t2m_requantize_s8(acc + b, q, oc);
            }
        }
    }
}

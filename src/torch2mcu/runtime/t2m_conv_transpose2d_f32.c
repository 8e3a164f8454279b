/* float32 transposed 2-D convolution: the loops of t2m_conv_transpose2d_s8 in float. */
#include "t2m_conv_transpose2d.h"

void t2m_conv_transpose2d_f32(const t2m_conv_transpose_shape *shape, float act_min,
                              float act_max, const float *input, const float *weights,
                              const float *bias, float *output)
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
        const float *filter = weights + (size_t)oc * (size_t)(in_c_per_group * k_hw);
        const float *in_group =
            input + (size_t)((oc / out_c_per_group) * in_c_per_group) * (size_t)in_hw;
        const float b = bias != NULL ? bias[oc] : 0.0f;
        float *out = output + (size_t)oc * shape->out_h * shape->out_w;
        int32_t oy;
        for (oy = 0; oy < shape->out_h; ++oy) {
            const int32_t ty = oy + shape->pad_h;
            const int32_t ky0 = ty % stride_h;
            int32_t ox;
            for (ox = 0; ox < shape->out_w; ++ox) {
                const int32_t tx = ox + shape->pad_w;
                const int32_t kx0 = tx % stride_w;
                float acc = b;
                int32_t ky, iy;
                for (ky = ky0, iy = (ty - ky0) / stride_h; ky < k_h && iy >= 0;
                     ky += stride_h, --iy) {
                    int32_t kx, ix;
                    if (iy >= in_h) {
                        continue;
                    }
                    for (kx = kx0, ix = (tx - kx0) / stride_w; kx < k_w && ix >= 0;
                         kx += stride_w, --ix) {
                        const float *x = in_group + iy * in_w + ix;
                        const float *f = filter + ky * k_w + kx;
                        int32_t ic;
                        if (ix >= in_w) {
                            continue;
                        }
                        for (ic = 0; ic < in_c_per_group; ++ic) {
                            acc += x[(size_t)ic * (size_t)in_hw] * f[(size_t)ic * (size_t)k_hw];
                        }
                    }
                }
                *out++ = acc < act_min ? act_min : (acc > act_max ? act_max : acc);
            }
        }
    }
}

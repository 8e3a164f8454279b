/* Dense float32 kernels: the float baseline that every ratio is measured against.
 * Same loops and layouts as the int8 kernels, without quantization. */
#include "t2m_conv2d.h"
#include "t2m_pool.h"

static float t2m_clamp_f(float v, float lo, float hi)
{
    return v < lo ? lo : (v > hi ? hi : v);
}

/* The first tap index k of a kernel axis whose input position p0 + k * d is >= 0, and one past
 * the last whose position is < size (taps d apart, k < n). */
static int32_t t2m_first_tap(int32_t p0, int32_t d)
{
    return p0 < 0 ? (-p0 + d - 1) / d : 0;
}

static int32_t t2m_end_tap(int32_t p0, int32_t d, int32_t n, int32_t size)
{
    int32_t end;
    if (p0 >= size) {
        return 0;
    }
    end = (size - p0 + d - 1) / d;
    return end < n ? end : n;
}

/* A dilated convolution (t2m_conv2d.h): the taps are dilation_h rows / dilation_w columns
 * apart; those that fall in the padding are skipped. */
void t2m_conv2d_dilated_f32(const t2m_conv_shape *shape, float act_min, float act_max,
                            const float *input, const float *weights, const float *bias,
                            float *output)
{
    const int32_t in_c_per_group = shape->in_c / shape->groups;
    const int32_t out_c_per_group = shape->out_c / shape->groups;
    const int32_t in_hw = (int32_t)shape->in_h * shape->in_w;
    const int32_t filter_size = in_c_per_group * shape->k_h * shape->k_w;
    const int32_t dh = shape->dilation_h > 1 ? shape->dilation_h : 1;
    const int32_t dw = shape->dilation_w > 1 ? shape->dilation_w : 1;
    int32_t oc;

    for (oc = 0; oc < shape->out_c; ++oc) {
        const int32_t group = oc / out_c_per_group;
        const float *filter = weights + (size_t)oc * (size_t)filter_size;
        const float *in_group = input + (size_t)(group * in_c_per_group) * (size_t)in_hw;
        const float b = bias != NULL ? bias[oc] : 0.0f;
        int32_t oy;
        for (oy = 0; oy < shape->out_h; ++oy) {
            const int32_t iy0 = oy * shape->stride_h - shape->pad_h;
            const int32_t ky_lo = t2m_first_tap(iy0, dh);
            const int32_t ky_hi = t2m_end_tap(iy0, dh, shape->k_h, shape->in_h);
            int32_t ox;
            for (ox = 0; ox < shape->out_w; ++ox) {
                const int32_t ix0 = ox * shape->stride_w - shape->pad_w;
                const int32_t kx_lo = t2m_first_tap(ix0, dw);
                const int32_t kx_hi = t2m_end_tap(ix0, dw, shape->k_w, shape->in_w);
                float acc = b;
                int32_t ic;
                for (ic = 0; ic < in_c_per_group; ++ic) {
                    const float *in_ch = in_group + (size_t)ic * (size_t)in_hw;
                    const float *f_ch = filter + (size_t)ic * shape->k_h * shape->k_w;
                    int32_t ky;
                    for (ky = ky_lo; ky < ky_hi; ++ky) {
                        /* index with signed arithmetic: ix0 may be negative at the left border */
                        const float *in_row = in_ch + (iy0 + ky * dh) * (int32_t)shape->in_w;
                        const float *f_row = f_ch + (size_t)ky * shape->k_w;
                        int32_t kx;
                        for (kx = kx_lo; kx < kx_hi; ++kx) {
                            acc += f_row[kx] * in_row[ix0 + kx * dw];
                        }
                    }
                }
                output[((size_t)oc * shape->out_h + (size_t)oy) * shape->out_w + (size_t)ox] =
                    t2m_clamp_f(acc, act_min, act_max);
            }
        }
    }
}

void t2m_conv2d_f32(const t2m_conv_shape *shape, float act_min, float act_max,
                    const float *input, const float *weights, const float *bias,
                    float *output)
{
    const int32_t in_c_per_group = shape->in_c / shape->groups;
    const int32_t out_c_per_group = shape->out_c / shape->groups;
    const int32_t in_hw = (int32_t)shape->in_h * shape->in_w;
    const int32_t filter_size = in_c_per_group * shape->k_h * shape->k_w;
    int32_t oc;

    for (oc = 0; oc < shape->out_c; ++oc) {
        const int32_t group = oc / out_c_per_group;
        const float *filter = weights + (size_t)oc * (size_t)filter_size;
        const float *in_group = input + (size_t)(group * in_c_per_group) * (size_t)in_hw;
        const float b = bias != NULL ? bias[oc] : 0.0f;
        int32_t oy;
        for (oy = 0; oy < shape->out_h; ++oy) {
            const int32_t iy0 = oy * shape->stride_h - shape->pad_h;
            const int32_t ky_lo = iy0 < 0 ? -iy0 : 0;
            const int32_t ky_hi = iy0 + shape->k_h > shape->in_h ? shape->in_h - iy0 : shape->k_h;
            int32_t ox;
            for (ox = 0; ox < shape->out_w; ++ox) {
                const int32_t ix0 = ox * shape->stride_w - shape->pad_w;
                const int32_t kx_lo = ix0 < 0 ? -ix0 : 0;
                const int32_t kx_hi = ix0 + shape->k_w > shape->in_w ? shape->in_w - ix0 : shape->k_w;
                float acc = b;
                int32_t ic;
                for (ic = 0; ic < in_c_per_group; ++ic) {
                    const float *in_ch = in_group + (size_t)ic * (size_t)in_hw;
                    const float *f_ch = filter + (size_t)ic * shape->k_h * shape->k_w;
                    int32_t ky;
                    for (ky = ky_lo; ky < ky_hi; ++ky) {
                        /* index with signed arithmetic: ix0 may be negative at the left border */
                        const float *in_row = in_ch + (iy0 + ky) * (int32_t)shape->in_w;
                        const float *f_row = f_ch + (size_t)ky * shape->k_w;
                        int32_t kx;
                        for (kx = kx_lo; kx < kx_hi; ++kx) {
                            acc += f_row[kx] * in_row[ix0 + kx];
                        }
                    }
                }
                output[((size_t)oc * shape->out_h + (size_t)oy) * shape->out_w + (size_t)ox] =
                    t2m_clamp_f(acc, act_min, act_max);
            }
        }
    }
}

void t2m_fc_f32(const t2m_fc_shape *shape, float act_min, float act_max,
                const float *input, const float *weights, const float *bias,
                float *output)
{
    int32_t o;
    for (o = 0; o < shape->out_features; ++o) {
        const float *row = weights + (size_t)o * shape->in_features;
        float acc = bias != NULL ? bias[o] : 0.0f;
        int32_t i;
        for (i = 0; i < shape->in_features; ++i) {
            acc += row[i] * input[i];
        }
        output[o] = t2m_clamp_f(acc, act_min, act_max);
    }
}

void t2m_maxpool2d_f32(const t2m_pool_shape *shape, const float *input, float *output)
{
    const size_t in_hw = (size_t)shape->in_h * shape->in_w;
    int32_t c;
    for (c = 0; c < shape->c; ++c) {
        const float *in_ch = input + (size_t)c * in_hw;
        int32_t oy;
        for (oy = 0; oy < shape->out_h; ++oy) {
            int32_t ox;
            for (ox = 0; ox < shape->out_w; ++ox) {
                const t2m_pool_window w = t2m_pool_window_at(shape, oy, ox);
                float m = in_ch[(size_t)w.y0 * shape->in_w + (size_t)w.x0];
                int32_t y;
                for (y = w.y0; y < w.y1; ++y) {
                    int32_t x;
                    for (x = w.x0; x < w.x1; ++x) {
                        const float v = in_ch[(size_t)y * shape->in_w + (size_t)x];
                        m = v > m ? v : m;
                    }
                }
                output[((size_t)c * shape->out_h + (size_t)oy) * shape->out_w + (size_t)ox] = m;
            }
        }
    }
}

void t2m_avgpool2d_f32(const t2m_pool_shape *shape, const float *input, float *output)
{
    const size_t in_hw = (size_t)shape->in_h * shape->in_w;
    int32_t c;
    for (c = 0; c < shape->c; ++c) {
        const float *in_ch = input + (size_t)c * in_hw;
        int32_t oy;
        for (oy = 0; oy < shape->out_h; ++oy) {
            int32_t ox;
            for (ox = 0; ox < shape->out_w; ++ox) {
                const t2m_pool_window w = t2m_pool_window_at(shape, oy, ox);
                const int32_t divisor = t2m_pool_divisor(shape, &w);
                float sum = 0.0f;
                int32_t y;
                for (y = w.y0; y < w.y1; ++y) {
                    int32_t x;
                    for (x = w.x0; x < w.x1; ++x) {
                        sum += in_ch[(size_t)y * shape->in_w + (size_t)x];
                    }
                }
                output[((size_t)c * shape->out_h + (size_t)oy) * shape->out_w + (size_t)ox] =
                    sum / (float)divisor;
            }
        }
    }
}

/* Adaptive pooling with PyTorch's uneven windows (see t2m_pool.h). */
static void t2m_adaptive_pool_f32(const t2m_pool_shape *shape, int is_max, const float *input,
                                  float *output)
{
    const size_t in_hw = (size_t)shape->in_h * shape->in_w;
    int32_t c;
    for (c = 0; c < shape->c; ++c) {
        const float *in_ch = input + (size_t)c * in_hw;
        int32_t oy;
        for (oy = 0; oy < shape->out_h; ++oy) {
            int32_t y0, y1, ox;
            t2m_adaptive_window((uint32_t)oy, shape->in_h, shape->out_h, &y0, &y1);
            for (ox = 0; ox < shape->out_w; ++ox) {
                int32_t x0, x1, y;
                float acc;
                t2m_adaptive_window((uint32_t)ox, shape->in_w, shape->out_w, &x0, &x1);
                acc = is_max ? in_ch[(size_t)y0 * shape->in_w + (size_t)x0] : 0.0f;
                for (y = y0; y < y1; ++y) {
                    const float *row = in_ch + (size_t)y * shape->in_w;
                    int32_t x;
                    for (x = x0; x < x1; ++x) {
                        if (is_max) {
                            acc = row[x] > acc ? row[x] : acc;
                        } else {
                            acc += row[x];
                        }
                    }
                }
                output[((size_t)c * shape->out_h + (size_t)oy) * shape->out_w + (size_t)ox] =
                    is_max ? acc : acc / (float)((y1 - y0) * (x1 - x0));
            }
        }
    }
}

void t2m_adaptive_maxpool2d_f32(const t2m_pool_shape *shape, const float *input, float *output)
{
    t2m_adaptive_pool_f32(shape, 1, input, output);
}

void t2m_adaptive_avgpool2d_f32(const t2m_pool_shape *shape, const float *input, float *output)
{
    t2m_adaptive_pool_f32(shape, 0, input, output);
}

void t2m_add_f32(size_t size, float act_min, float act_max,
                 const float *input1, const float *input2, float *output)
{
    size_t i;
    for (i = 0; i < size; ++i) {
        output[i] = t2m_clamp_f(input1[i] + input2[i], act_min, act_max);
    }
}

void t2m_clamp_f32(size_t size, float act_min, float act_max,
                   const float *input, float *output)
{
    size_t i;
    for (i = 0; i < size; ++i) {
        output[i] = t2m_clamp_f(input[i], act_min, act_max);
    }
}

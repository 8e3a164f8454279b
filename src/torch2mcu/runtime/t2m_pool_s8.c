/* int8 max and average pooling (TFLM reference_integer_ops::MaxPool / AveragePool),
 * with PyTorch's window and divisor rules, and adaptive pooling with PyTorch's uneven windows.
 * Input and output share one quantization. */
#include "t2m_pool.h"

void t2m_maxpool2d_s8(const t2m_pool_shape *shape, int32_t act_min, int32_t act_max,
                      const int8_t *input, int8_t *output)
{
    const size_t in_hw = (size_t)shape->in_h * shape->in_w;
    int32_t c;
    for (c = 0; c < shape->c; ++c) {
        const int8_t *in_ch = input + (size_t)c * in_hw;
        int32_t oy;
        for (oy = 0; oy < shape->out_h; ++oy) {
            int32_t ox;
            for (ox = 0; ox < shape->out_w; ++ox) {
                const t2m_pool_window w = t2m_pool_window_at(shape, oy, ox);
                int32_t m = -128;
                int32_t y;
                for (y = w.y0; y < w.y1; ++y) {
                    int32_t x;
                    for (x = w.x0; x < w.x1; ++x) {
                        const int32_t v = in_ch[(size_t)y * shape->in_w + (size_t)x];
                        m = v > m ? v : m;
                    }
                }
                output[((size_t)c * shape->out_h + (size_t)oy) * shape->out_w + (size_t)ox] =
                    (int8_t)t2m_clamp_i32(m, act_min, act_max);
            }
        }
    }
}

void t2m_avgpool2d_s8(const t2m_pool_shape *shape, int32_t act_min, int32_t act_max,
                      const int8_t *input, int8_t *output)
{
    const size_t in_hw = (size_t)shape->in_h * shape->in_w;
    int32_t c;
    for (c = 0; c < shape->c; ++c) {
        const int8_t *in_ch = input + (size_t)c * in_hw;
        int32_t oy;
        for (oy = 0; oy < shape->out_h; ++oy) {
            int32_t ox;
            for (ox = 0; ox < shape->out_w; ++ox) {
                const t2m_pool_window w = t2m_pool_window_at(shape, oy, ox);
                const int32_t divisor = t2m_pool_divisor(shape, &w);
                int32_t sum = 0;
                int32_t avg;
                int32_t y;
                for (y = w.y0; y < w.y1; ++y) {
                    int32_t x;
                    for (x = w.x0; x < w.x1; ++x) {
                        sum += in_ch[(size_t)y * shape->in_w + (size_t)x];
                    }
                }
                /* Round half away from zero; C division truncates toward zero. */
                avg = sum > 0 ? (sum + divisor / 2) / divisor : (sum - divisor / 2) / divisor;
                output[((size_t)c * shape->out_h + (size_t)oy) * shape->out_w + (size_t)ox] =
                    (int8_t)t2m_clamp_i32(avg, act_min, act_max);
            }
        }
    }
}

/* Rounded integer mean of a window sum (half away from zero; C division truncates toward zero). */
static int32_t t2m_rounded_mean(int32_t sum, int32_t count)
{
    return sum > 0 ? (sum + count / 2) / count : (sum - count / 2) / count;
}

/* One adaptive pool over every channel: max (is_max) or rounded mean of each window. */
static void t2m_adaptive_pool_s8(const t2m_pool_shape *shape, int is_max, int32_t act_min,
                                 int32_t act_max, const int8_t *input, int8_t *output)
{
    const size_t in_hw = (size_t)shape->in_h * shape->in_w;
    int32_t c;
    for (c = 0; c < shape->c; ++c) {
        const int8_t *in_ch = input + (size_t)c * in_hw;
        int32_t oy;
        for (oy = 0; oy < shape->out_h; ++oy) {
            int32_t y0, y1, ox;
            t2m_adaptive_window((uint32_t)oy, shape->in_h, shape->out_h, &y0, &y1);
            for (ox = 0; ox < shape->out_w; ++ox) {
                int32_t x0, x1, y, v;
                int32_t acc = is_max ? -128 : 0;
                t2m_adaptive_window((uint32_t)ox, shape->in_w, shape->out_w, &x0, &x1);
                for (y = y0; y < y1; ++y) {
                    const int8_t *row = in_ch + (size_t)y * shape->in_w;
                    int32_t x;
                    for (x = x0; x < x1; ++x) {
                        if (is_max) {
                            acc = row[x] > acc ? row[x] : acc;
                        } else {
                            acc += row[x];
                        }
                    }
                }
                v = is_max ? acc : t2m_rounded_mean(acc, (y1 - y0) * (x1 - x0));
                output[((size_t)c * shape->out_h + (size_t)oy) * shape->out_w + (size_t)ox] =
                    (int8_t)t2m_clamp_i32(v, act_min, act_max);
            }
        }
    }
}

void t2m_adaptive_maxpool2d_s8(const t2m_pool_shape *shape, int32_t act_min, int32_t act_max,
                               const int8_t *input, int8_t *output)
{
    t2m_adaptive_pool_s8(shape, 1, act_min, act_max, input, output);
}

void t2m_adaptive_avgpool2d_s8(const t2m_pool_shape *shape, int32_t act_min, int32_t act_max,
                               const int8_t *input, int8_t *output)
{
    t2m_adaptive_pool_s8(shape, 0, act_min, act_max, input, output);
}

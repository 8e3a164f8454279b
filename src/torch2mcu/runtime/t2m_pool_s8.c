/* int8 max and average pooling (TFLM reference_integer_ops::MaxPool / AveragePool),
 * with PyTorch's window and divisor rules. Input and output share one quantization. */
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

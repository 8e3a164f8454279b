/* float32 constant padding: the loops of t2m_pad_s8 (t2m_conv2d_s8.c) on floats. */
#include "t2m_pad.h"

void t2m_pad_f32(const t2m_pad_shape *shape, float value, const float *input, float *output)
{
    int32_t c;
    for (c = 0; c < shape->c; ++c) {
        const float *in_ch = input + (size_t)c * shape->in_h * shape->in_w;
        int32_t y;
        for (y = 0; y < shape->out_h; ++y) {
            const int32_t iy = y - shape->pad_top;
            int32_t x;
            for (x = 0; x < shape->out_w; ++x) {
                const int32_t ix = x - shape->pad_left;
                const int inside = iy >= 0 && iy < shape->in_h && ix >= 0 && ix < shape->in_w;
                *output++ = inside ? in_ch[iy * shape->in_w + ix] : value;
            }
        }
    }
}

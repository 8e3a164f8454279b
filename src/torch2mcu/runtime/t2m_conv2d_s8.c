/* Dense int8 2-D (and 1-D: height 1) convolution on a prepared (already padded) input, any
 * kernel, stride and group count, taps adjacent (t2m_conv2d_impl.h); and the padding step. */
#define T2M_CONV_ROWS t2m_conv2d_rows_s8
#define T2M_CONV_COLS t2m_conv2d_s8
#define T2M_DILATED 0
#include "t2m_conv2d_impl.h"

void t2m_pad_s8(const t2m_pad_shape *shape, int8_t value, const int8_t *input, int8_t *output)
{
    int32_t c;
    for (c = 0; c < shape->c; ++c) {
        const int8_t *in_ch = input + (size_t)c * shape->in_h * shape->in_w;
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

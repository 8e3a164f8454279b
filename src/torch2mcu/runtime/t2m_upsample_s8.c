/* Nearest-neighbour upsampling by integer factors, int8_t: each input row is widened once into
 * the output, then copied to the next scale_h - 1 output rows. */
#include <string.h>

#include "t2m_upsample.h"

void t2m_upsample_nearest_s8(const t2m_upsample_shape *shape, const int8_t *input,
                             int8_t *output)
{
    const size_t out_w = (size_t)shape->in_w * shape->scale_w;
    int32_t c;
    for (c = 0; c < shape->c; ++c) {
        int32_t y;
        for (y = 0; y < shape->in_h; ++y) {
            int8_t *row = output;
            int32_t x, r;
            for (x = 0; x < shape->in_w; ++x) {
                const int8_t v = *input++;
                int32_t k;
                for (k = 0; k < shape->scale_w; ++k) {
                    *output++ = v;
                }
            }
            for (r = 1; r < shape->scale_h; ++r) {
                memcpy(output, row, out_w * sizeof(*row));
                output += out_w;
            }
        }
    }
}

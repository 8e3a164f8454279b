/* Axis permutation of one sample, int8_t (see t2m_transpose.h). */
#include "t2m_transpose.h"

void t2m_transpose_s8(const t2m_transpose_shape *shape, const int8_t *input, int8_t *output)
{
    uint32_t a;
    for (a = 0; a < shape->d0; ++a) {
        uint32_t b;
        for (b = 0; b < shape->d1; ++b) {
            const int8_t *row = input + a * shape->s0 + b * shape->s1;
            uint32_t c;
            for (c = 0; c < shape->d2; ++c) {
                *output++ = row[c * shape->s2];
            }
        }
    }
}

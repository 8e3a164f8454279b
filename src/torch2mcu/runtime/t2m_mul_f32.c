/* float32 element-wise product with broadcasting, for the float baseline. */
#include "t2m_mul.h"

void t2m_mul_f32(const t2m_broadcast_shape *shape, float act_min, float act_max,
                 const float *input1, const float *input2, float *output)
{
    uint32_t i0, i1, i2, i3;
    size_t o = 0;
    for (i0 = 0; i0 < shape->dims[0]; ++i0) {
        for (i1 = 0; i1 < shape->dims[1]; ++i1) {
            for (i2 = 0; i2 < shape->dims[2]; ++i2) {
                const float *a = input1 + (size_t)i0 * shape->stride1[0] +
                                 (size_t)i1 * shape->stride1[1] + (size_t)i2 * shape->stride1[2];
                const float *b = input2 + (size_t)i0 * shape->stride2[0] +
                                 (size_t)i1 * shape->stride2[1] + (size_t)i2 * shape->stride2[2];
                for (i3 = 0; i3 < shape->dims[3]; ++i3) {
                    const float v = a[(size_t)i3 * shape->stride1[3]] *
                                    b[(size_t)i3 * shape->stride2[3]];
                    output[o++] = v < act_min ? act_min : (v > act_max ? act_max : v);
                }
            }
        }
    }
}

/* int8 element-wise product with broadcasting (TFLM reference_integer_ops::Mul arithmetic). */
#include "t2m.h"
#include "t2m_mul.h"

void t2m_mul_s8(const t2m_mul_params_s8 *p, const t2m_broadcast_shape *shape,
                const int8_t *input1, const int8_t *input2, int8_t *output)
{
    uint32_t i0, i1, i2, i3;
    size_t o = 0;
    for (i0 = 0; i0 < shape->dims[0]; ++i0) {
        for (i1 = 0; i1 < shape->dims[1]; ++i1) {
            for (i2 = 0; i2 < shape->dims[2]; ++i2) {
                const int8_t *a = input1 + (size_t)i0 * shape->stride1[0] +
                                  (size_t)i1 * shape->stride1[1] + (size_t)i2 * shape->stride1[2];
                const int8_t *b = input2 + (size_t)i0 * shape->stride2[0] +
                                  (size_t)i1 * shape->stride2[1] + (size_t)i2 * shape->stride2[2];
                const uint32_t sa = shape->stride1[3], sb = shape->stride2[3];
                for (i3 = 0; i3 < shape->dims[3]; ++i3) {
                    /* |(x - zx)(y - zy)| <= 255 * 255: no overflow */
                    const int32_t prod = ((int32_t)a[(size_t)i3 * sa] + p->input1_offset) *
                                         ((int32_t)b[(size_t)i3 * sb] + p->input2_offset);
                    /* limited to [-256, 255] before the offset: no overflow, same int8 result */
                    const int32_t r = t2m_clamp_i32(t2m_requantize(prod, p->output_multiplier,
                                                                   p->output_shift), -256, 255);
                    output[o++] = (int8_t)t2m_clamp_i32(r + p->output_offset, p->act_min,
                                                        p->act_max);
                }
            }
        }
    }
}

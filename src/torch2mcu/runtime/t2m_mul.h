/* Element-wise product of two tensors with broadcasting. */
#ifndef T2M_MUL_H
#define T2M_MUL_H

#include <stddef.h>
#include <stdint.h>

#include "t2m_broadcast.h"

#ifdef __cplusplus
extern "C" {
#endif

/* TFLM's int8 MUL: out = clamp(output_offset + MultiplyByQuantizedMultiplier(
 * (in1 + input1_offset) * (in2 + input2_offset), output_multiplier, output_shift),
 * act_min, act_max). */
typedef struct {
    int32_t input1_offset, input2_offset, output_offset;
    int32_t output_multiplier, output_shift;
    int32_t act_min, act_max;
} t2m_mul_params_s8;

void t2m_mul_s8(const t2m_mul_params_s8 *p, const t2m_broadcast_shape *shape,
                const int8_t *input1, const int8_t *input2, int8_t *output);

void t2m_mul_f32(const t2m_broadcast_shape *shape, float act_min, float act_max,
                 const float *input1, const float *input2, float *output);

#ifdef __cplusplus
}
#endif

#endif /* T2M_MUL_H */

/* Element-wise difference of two tensors of the same shape. */
#ifndef T2M_SUB_H
#define T2M_SUB_H

#include <stddef.h>
#include <stdint.h>

#include "t2m.h"

#ifdef __cplusplus
extern "C" {
#endif

/* TFLM's int8 SUB: as t2m_add_s8 (same parameters), the rescaled input2 subtracted. */
void t2m_sub_s8(const t2m_add_params_s8 *p, size_t size,
                const int8_t *input1, const int8_t *input2, int8_t *output);

void t2m_sub_f32(size_t size, float act_min, float act_max,
                 const float *input1, const float *input2, float *output);

#ifdef __cplusplus
}
#endif

#endif /* T2M_SUB_H */

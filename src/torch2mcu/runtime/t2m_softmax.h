/* softmax and log_softmax along one axis: int8 with TFLM's SOFTMAX / LOG_SOFTMAX reference
 * arithmetic (gemmlowp fixed point), float32 with the maximum subtracted first.
 *
 * The tensor is (outer, depth, inner), channel-major: the function runs along the depth axis
 * (stride inner) for each of the outer * inner positions; a classifier head is (1, classes, 1). */
#ifndef T2M_SOFTMAX_H
#define T2M_SOFTMAX_H

#include "t2m.h"

#ifdef __cplusplus
extern "C" {
#endif

/* int8 parameters, computed offline from the input scale (beta = 1):
 * input_multiplier / input_shift rescale a difference x - max(x) into Q5.26; differences below
 * diff_min are left out (their exponential is negligible); log_softmax also uses the reverse
 * rescaling (Q5.26 back to input units) for its lower cut. Output: softmax scale 1/256, zero
 * point -128; log_softmax scale 16/256, zero point 127. depth is at most 4095. */
typedef struct {
    int32_t outer, depth, inner;
    int32_t input_multiplier, input_shift;
    int32_t diff_min;
    int32_t reverse_multiplier, reverse_shift; /* log_softmax only */
} t2m_softmax_params_s8;

void t2m_softmax_s8(const t2m_softmax_params_s8 *p, const int8_t *input, int8_t *output);
void t2m_softmax_log_s8(const t2m_softmax_params_s8 *p, const int8_t *input, int8_t *output);

void t2m_softmax_f32(size_t outer, size_t depth, size_t inner, const float *input, float *output);
void t2m_softmax_log_f32(size_t outer, size_t depth, size_t inner, const float *input,
                         float *output);

#ifdef __cplusplus
}
#endif

#endif /* T2M_SOFTMAX_H */

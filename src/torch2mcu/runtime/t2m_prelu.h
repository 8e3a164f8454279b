/* PReLU: one slope for the whole tensor, or one per channel. */
#ifndef T2M_PRELU_H
#define T2M_PRELU_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* TFLM's int8 PRELU. v = in + input_offset; out = clamp(output_offset + (v >= 0 ?
 * MBQM(v, output_multiplier_1, output_shift_1) :
 * MBQM(v * (alpha + alpha_offset), output_multiplier_2, output_shift_2)), -128, 127). */
typedef struct {
    int32_t input_offset, alpha_offset, output_offset;
    int32_t output_multiplier_1, output_shift_1;
    int32_t output_multiplier_2, output_shift_2;
} t2m_prelu_params_s8;

/* The tensor is `groups` consecutive blocks of `inner` values; block g uses alpha[g]
 * (groups = 1: one slope; groups = channels, inner = values per channel). */
void t2m_prelu_s8(const t2m_prelu_params_s8 *p, size_t groups, size_t inner,
                  const int8_t *alpha, const int8_t *input, int8_t *output);

void t2m_prelu_f32(size_t groups, size_t inner, const float *alpha, const float *input,
                   float *output);

#ifdef __cplusplus
}
#endif

#endif /* T2M_PRELU_H */

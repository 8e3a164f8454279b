/* Axis permutation of one sample: the channel-last (HWC) boundary of a model converted with
 * layout nhwc. */
#ifndef T2M_TRANSPOSE_H
#define T2M_TRANSPOSE_H

#include "t2m.h"

#ifdef __cplusplus
extern "C" {
#endif

/* output[a][b][c] = input[a * s0 + b * s1 + c * s2] for a < d0, b < d1, c < d2, written in
 * order: output (d0, d1, d2); s0..s2 are the input strides (in elements) of the output axes.
 * Input and output must not overlap; they share one quantization. */
typedef struct {
    uint16_t d0, d1, d2;
    uint32_t s0, s1, s2;
} t2m_transpose_shape;

void t2m_transpose_s8(const t2m_transpose_shape *shape, const int8_t *input, int8_t *output);

void t2m_transpose_f32(const t2m_transpose_shape *shape, const float *input, float *output);

#ifdef __cplusplus
}
#endif

#endif /* T2M_TRANSPOSE_H */

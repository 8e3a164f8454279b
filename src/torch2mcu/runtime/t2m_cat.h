/* Concatenation along channels: with channel-major activations each input is one contiguous
 * block of the output. The memory plan writes most inputs in place; these copy the others. */
#ifndef T2M_CAT_H
#define T2M_CAT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* output[i] = input[i] for i < size (input and output share one quantization). */
void t2m_cat_s8(size_t size, const int8_t *input, int8_t *output);

void t2m_cat_f32(size_t size, const float *input, float *output);

#ifdef __cplusplus
}
#endif

#endif /* T2M_CAT_H */

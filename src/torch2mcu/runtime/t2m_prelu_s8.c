/* int8 PReLU (TFLM PRELU arithmetic). */
#include "t2m.h"
#include "t2m_prelu.h"

void t2m_prelu_s8(const t2m_prelu_params_s8 *p, size_t groups, size_t inner,
                  const int8_t *alpha, const int8_t *input, int8_t *output)
{
    size_t g, i;
    for (g = 0; g < groups; ++g) {
        const int32_t a = (int32_t)alpha[g] + p->alpha_offset;
        for (i = 0; i < inner; ++i) {
            const int32_t v = (int32_t)*input++ + p->input_offset;
            /* |v| <= 255 and |a| <= 255: the product cannot overflow */
            const int32_t r = v >= 0
                ? t2m_requantize(v, p->output_multiplier_1, p->output_shift_1)
                : t2m_requantize(v * a, p->output_multiplier_2, p->output_shift_2);
            /* limited to [-256, 255] before the offset: no overflow, same int8 result */
            *output++ = (int8_t)t2m_clamp_i32(t2m_clamp_i32(r, -256, 255) + p->output_offset,
                                              -128, 127);
        }
    }
}

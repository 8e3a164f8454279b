/* int8 element-wise kernels: add (TFLM reference_integer_ops::Add) and clamp. */
#include "t2m.h"

void t2m_add_s8(const t2m_add_params_s8 *p, size_t size,
                const int8_t *input1, const int8_t *input2, int8_t *output)
{
    size_t i;
    for (i = 0; i < size; ++i) {
        const int32_t v1 = ((int32_t)input1[i] + p->input1_offset) * (1 << p->left_shift);
        const int32_t v2 = ((int32_t)input2[i] + p->input2_offset) * (1 << p->left_shift);
        const int32_t s1 = t2m_requantize(v1, p->input1_multiplier, p->input1_shift);
        const int32_t s2 = t2m_requantize(v2, p->input2_multiplier, p->input2_shift);
        /* limited to [-256, 255] before the offset, as in t2m_requantize_s8: no overflow */
        const int32_t r = t2m_clamp_i32(t2m_requantize(s1 + s2, p->output_multiplier,
                                                       p->output_shift), -256, 255);
        output[i] = (int8_t)t2m_clamp_i32(r + p->output_offset, p->act_min, p->act_max);
    }
}

void t2m_clamp_s8(size_t size, int32_t act_min, int32_t act_max,
                  const int8_t *input, int8_t *output)
{
    size_t i;
    for (i = 0; i < size; ++i) {
        output[i] = (int8_t)t2m_clamp_i32(input[i], act_min, act_max);
    }
}

void t2m_lut_s8(size_t size, const int8_t *table, const int8_t *input, int8_t *output)
{
    size_t i;
    for (i = 0; i < size; ++i) {
        output[i] = table[(int32_t)input[i] + 128];
    }
}

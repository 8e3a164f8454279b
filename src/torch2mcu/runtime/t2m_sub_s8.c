/* int8 element-wise difference (TFLM SUB arithmetic). */
#include "t2m_sub.h"

void t2m_sub_s8(const t2m_add_params_s8 *p, size_t size,
                const int8_t *input1, const int8_t *input2, int8_t *output)
{
    size_t i;
    for (i = 0; i < size; ++i) {
        const int32_t v1 = ((int32_t)input1[i] + p->input1_offset) * (1 << p->left_shift);
        const int32_t v2 = ((int32_t)input2[i] + p->input2_offset) * (1 << p->left_shift);
        const int32_t s1 = t2m_requantize(v1, p->input1_multiplier, p->input1_shift);
        const int32_t s2 = t2m_requantize(v2, p->input2_multiplier, p->input2_shift);
        /* s1 - s2 fits int32 (proved at generation); limited to [-256, 255] before the offset */
        const int32_t r = t2m_clamp_i32(t2m_requantize(s1 - s2, p->output_multiplier,
                                                       p->output_shift), -256, 255);
        output[i] = (int8_t)t2m_clamp_i32(r + p->output_offset, p->act_min, p->act_max);
    }
}

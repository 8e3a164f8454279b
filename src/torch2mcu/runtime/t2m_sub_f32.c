/* float32 element-wise difference, for the float baseline. */
#include "t2m_sub.h"

void t2m_sub_f32(size_t size, float act_min, float act_max,
                 const float *input1, const float *input2, float *output)
{
    size_t i;
    for (i = 0; i < size; ++i) {
        const float v = input1[i] - input2[i];
        output[i] = v < act_min ? act_min : (v > act_max ? act_max : v);
    }
}

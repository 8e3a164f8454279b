/* float32 PReLU, for the float baseline. */
#include "t2m_prelu.h"

void t2m_prelu_f32(size_t groups, size_t inner, const float *alpha, const float *input,
                   float *output)
{
    size_t g, i;
    for (g = 0; g < groups; ++g) {
        const float a = alpha[g];
        for (i = 0; i < inner; ++i) {
            const float v = *input++;
            *output++ = v >= 0.0f ? v : a * v;
        }
    }
}

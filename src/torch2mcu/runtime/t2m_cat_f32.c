/* float32 concatenation: copy one input into its block of the output. */
#include "t2m_cat.h"

void t2m_cat_f32(size_t size, const float *input, float *output)
{
    size_t i;
    for (i = 0; i < size; ++i) {
        output[i] = input[i];
    }
}

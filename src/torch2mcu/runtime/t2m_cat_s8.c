/* int8 concatenation: copy one input into its block of the output. */
#include "t2m_cat.h"

void t2m_cat_s8(size_t size, const int8_t *input, int8_t *output)
{
    size_t i;
    for (i = 0; i < size; ++i) {
        output[i] = input[i];
    }
}

/* clamp4: hand-written test fixture (see clamp4.h). */
#include "clamp4.h"

#ifndef T2M_LAYER_MARK
#define T2M_LAYER_MARK(i) ((void)0)
#endif

t2m_status clamp4_run(const int8_t *input, int8_t *output)
{
    T2M_LAYER_MARK(0);
    t2m_clamp_s8(CLAMP4_INPUT_SIZE, -10, 10, input, output);
    T2M_LAYER_MARK(1);
    return T2M_OK;
}

/* Dense int8 fully connected layer (TFLM reference_integer_ops::FullyConnected, per-channel),
 * input zero point folded into the bias. */
#include "t2m_dot.h"

void t2m_fc_s8(const t2m_fc_shape *shape, const t2m_requant_s8 *q,
               const int8_t *input, const int8_t *weights, const int32_t *bias,
               int8_t *output)
{
    const int32_t n = shape->in_features;
    int32_t o;
    for (o = 0; o < shape->out_features; ++o) {
        const int32_t acc = t2m_dot_s8(weights + (size_t)o * (size_t)n, input, n, bias[o]);
        output[o] = t2m_requantize_s8(acc, q, o);
    }
}

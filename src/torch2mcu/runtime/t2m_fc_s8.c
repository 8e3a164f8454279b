/* Dense int8 fully connected layer. Arithmetic: TFLM reference_integer_ops::FullyConnected
 * with per-channel requantization. */
#include "t2m.h"

void t2m_fc_s8(const t2m_fc_shape *shape, const t2m_requant_s8 *q,
               const int8_t *input, const int8_t *weights, const int32_t *bias,
               int8_t *output)
{
    int32_t o;
    for (o = 0; o < shape->out_features; ++o) {
        const int8_t *row = weights + (size_t)o * shape->in_features;
        int32_t acc = bias != NULL ? bias[o] : 0;
        int32_t i;
        for (i = 0; i < shape->in_features; ++i) {
            acc += (int32_t)row[i] * ((int32_t)input[i] + q->input_offset);
        }
        acc = t2m_requantize(acc, q->multiplier[o], q->shift[o]) + q->output_offset;
        output[o] = (int8_t)t2m_clamp_i32(acc, q->act_min, q->act_max);
    }
}

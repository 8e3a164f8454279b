/* float32 softmax and log_softmax for the float baseline: the row maximum is subtracted before
 * expf, so no exponential overflows and the largest is exactly 1. */
#include <math.h>

#include "t2m_softmax.h"

static void t2m_softmax_row_f32(size_t depth, size_t stride, int log_form, const float *x,
                                float *y)
{
    float max = x[0];
    float sum = 0.0f;
    size_t c;
    for (c = 1; c < depth; ++c) {
        if (x[c * stride] > max) {
            max = x[c * stride];
        }
    }
    for (c = 0; c < depth; ++c) {
        const float e = expf(x[c * stride] - max);
        sum += e;
        if (!log_form) {
            y[c * stride] = e;
        }
    }
    if (log_form) {
        const float log_sum = logf(sum);
        for (c = 0; c < depth; ++c) {
            y[c * stride] = (x[c * stride] - max) - log_sum;
        }
    } else {
        for (c = 0; c < depth; ++c) {
            y[c * stride] /= sum;
        }
    }
}

static void t2m_softmax_all_f32(size_t outer, size_t depth, size_t inner, int log_form,
                                const float *input, float *output)
{
    size_t o, i;
    for (o = 0; o < outer; ++o) {
        for (i = 0; i < inner; ++i) {
            const size_t base = o * depth * inner + i;
            t2m_softmax_row_f32(depth, inner, log_form, input + base, output + base);
        }
    }
}

void t2m_softmax_f32(size_t outer, size_t depth, size_t inner, const float *input, float *output)
{
    t2m_softmax_all_f32(outer, depth, inner, 0, input, output);
}

void t2m_softmax_log_f32(size_t outer, size_t depth, size_t inner, const float *input,
                         float *output)
{
    t2m_softmax_all_f32(outer, depth, inner, 1, input, output);
}

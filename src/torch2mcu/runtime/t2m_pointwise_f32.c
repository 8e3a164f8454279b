/* float32 pointwise activations for the float baseline (the int8 model uses t2m_lut_s8). */
#include <math.h>

#include "t2m.h"

static float t2m_clampf(float v, float lo, float hi)
{
    return v < lo ? lo : (v > hi ? hi : v);
}

static float t2m_fn_f32(t2m_fn fn, float alpha, float beta, float x)
{
    switch (fn) {
    case T2M_FN_SIGMOID:
        return 1.0f / (1.0f + expf(-x));
    case T2M_FN_TANH:
        return tanhf(x);
    case T2M_FN_HARDSIGMOID:
        return t2m_clampf(x / 6.0f + 0.5f, 0.0f, 1.0f);
    case T2M_FN_HARDSWISH:
        return x * t2m_clampf(x + 3.0f, 0.0f, 6.0f) / 6.0f;
    case T2M_FN_LEAKY_RELU:
        return x >= 0.0f ? x : alpha * x;
    case T2M_FN_ELU:
        return x > 0.0f ? x : alpha * (expf(x) - 1.0f);
    case T2M_FN_GELU:
        return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f));
    case T2M_FN_GELU_TANH:
        return 0.5f * x * (1.0f + tanhf(0.79788456080286536f * (x + 0.044715f * x * x * x)));
    case T2M_FN_SILU:
        return x / (1.0f + expf(-x));
    case T2M_FN_AFFINE:
        return x * alpha + beta;
    default:
        return x;
    }
}

void t2m_pointwise_f32(t2m_fn fn, float alpha, float beta, size_t size, const float *input,
                       float *output)
{
    size_t i;
    for (i = 0; i < size; ++i) {
        output[i] = t2m_fn_f32(fn, alpha, beta, input[i]);
    }
}

/* Transposed 2-D convolution (PyTorch ConvTranspose2d, TFLite TRANSPOSE_CONV), batch 1. */
#ifndef T2M_CONV_TRANSPOSE2D_H
#define T2M_CONV_TRANSPOSE2D_H

#include "t2m.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Input (in_c, in_h, in_w) scatters to output (out_c, out_h, out_w): input pixel (iy, ix)
 * through tap (ky, kx) reaches output (iy * stride_h - pad_h + ky, ix * stride_w - pad_w + kx)
 * when that lies inside the output. pad_h / pad_w are PyTorch's padding (the top / left rows
 * and columns cropped); out_h / out_w include any output_padding. Weights are
 * (out_c, in_c / groups, k_h, k_w): output channels first. */
typedef struct {
    uint16_t in_c, in_h, in_w;
    uint16_t out_c, out_h, out_w;
    uint16_t k_h, k_w;
    uint16_t stride_h, stride_w;
    uint16_t pad_h, pad_w;
    uint16_t groups;
} t2m_conv_transpose_shape;

/* int8, as TFLM reference_integer_ops::TransposeConv: per output, the int32 sum of
 * (x + input_offset) * w over the taps that reach it, plus bias[oc] (NULL: none), requantized
 * per output channel. input_offset is minus the input zero point. Needs no scratch. */
void t2m_conv_transpose2d_s8(const t2m_conv_transpose_shape *shape, const t2m_requant_s8 *q,
                             int32_t input_offset, const int8_t *input, const int8_t *weights,
                             const int32_t *bias, int8_t *output);

/* float32 baseline: same loops, output clamped to [act_min, act_max]. */
void t2m_conv_transpose2d_f32(const t2m_conv_transpose_shape *shape, float act_min,
                              float act_max, const float *input, const float *weights,
                              const float *bias, float *output);

#ifdef __cplusplus
}
#endif

#endif /* T2M_CONV_TRANSPOSE2D_H */

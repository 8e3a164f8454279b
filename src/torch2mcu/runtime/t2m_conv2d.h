/* Dilated convolution kernels and the float32 conv variants (the generated C includes this
 * after t2m.h when a model has a conv). The generic undilated kernels are in t2m.h. */
#ifndef T2M_CONV2D_H
#define T2M_CONV2D_H

#include "t2m.h"

#ifdef __cplusplus
extern "C" {
#endif

/* t2m_conv2d_s8 / t2m_conv2d_rows_s8 / t2m_conv2d_f32 with the kernel taps dilation_h rows and
 * dilation_w columns apart (same arguments, scratch and contracts). The sparse kernels need no
 * variant: their stored offsets include the dilation. */
void t2m_conv2d_dilated_s8(const t2m_conv_shape *shape, const t2m_requant_s8 *q,
                           const int8_t *input, const int8_t *weights, const int32_t *bias,
                           int8_t *output, int8_t *scratch);
void t2m_conv2d_rows_dilated_s8(const t2m_conv_shape *shape, const t2m_requant_s8 *q,
                                const int8_t *input, const int8_t *weights, const int32_t *bias,
                                int8_t *output);
/* Variants of t2m_conv2d_f32 (t2m.h) the generator picks by shape, same arguments: a kernel
 * width (and stride) the compiler unrolls, so that each input of a kernel row is loaded once
 * for its taps: k1 (k_w == 1, any stride), k3s1 / k3s2 (k_w == 3, stride_w 1 / 2), k5s1 (k_w ==
 * 5, stride_w 1); and t2m_conv2d_1x1_f32, a 1x1 conv of stride 1, no padding, groups 1 and no
 * pool, as a matrix product (four output channels x four pixels per pass). */
void t2m_conv2d_k1_f32(const t2m_conv_shape *shape, float act_min, float act_max,
                       const float *input, const float *weights, const float *bias,
                       float *output);
void t2m_conv2d_k3s1_f32(const t2m_conv_shape *shape, float act_min, float act_max,
                         const float *input, const float *weights, const float *bias,
                         float *output);
void t2m_conv2d_k3s2_f32(const t2m_conv_shape *shape, float act_min, float act_max,
                         const float *input, const float *weights, const float *bias,
                         float *output);
void t2m_conv2d_k5s1_f32(const t2m_conv_shape *shape, float act_min, float act_max,
                         const float *input, const float *weights, const float *bias,
                         float *output);
/* A 3x3 depthwise conv (groups == in_c == out_c), stride 1 or 2 (both axes), padding 0 or 1,
 * no pool. */
void t2m_conv2d_dw3x3_f32(const t2m_conv_shape *shape, float act_min, float act_max,
                          const float *input, const float *weights, const float *bias,
                          float *output);
void t2m_conv2d_1x1_f32(const t2m_conv_shape *shape, float act_min, float act_max,
                        const float *input, const float *weights, const float *bias,
                        float *output);
void t2m_conv2d_dilated_f32(const t2m_conv_shape *shape, float act_min, float act_max,
                            const float *input, const float *weights, const float *bias,
                            float *output);

#ifdef __cplusplus
}
#endif

#endif /* T2M_CONV2D_H */

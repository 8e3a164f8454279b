/* Dilated convolution kernels (the generated C includes this after t2m.h when a model has a
 * dilated conv). The undilated kernels are in t2m.h. */
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
void t2m_conv2d_dilated_f32(const t2m_conv_shape *shape, float act_min, float act_max,
                            const float *input, const float *weights, const float *bias,
                            float *output);

#ifdef __cplusplus
}
#endif

#endif /* T2M_CONV2D_H */

/* Constant padding as a layer. The int8 kernel is t2m_pad_s8 (t2m.h), which the conv kernels
 * also use; this header adds its float32 twin. */
#ifndef T2M_PAD_H
#define T2M_PAD_H

#include "t2m.h"

#ifdef __cplusplus
extern "C" {
#endif

/* t2m_pad_s8 on floats: copy (c, in_h, in_w) into (c, out_h, out_w) at (pad_top, pad_left),
 * filling the rest with value; rows and columns beyond out_h / out_w are cropped. */
void t2m_pad_f32(const t2m_pad_shape *shape, float value, const float *input, float *output);

#ifdef __cplusplus
}
#endif

#endif /* T2M_PAD_H */

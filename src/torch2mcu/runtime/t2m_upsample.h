/* Nearest-neighbour upsampling by integer factors (PyTorch Upsample(mode='nearest')). */
#ifndef T2M_UPSAMPLE_H
#define T2M_UPSAMPLE_H

#include "t2m.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Input (c, in_h, in_w) -> output (c, in_h * scale_h, in_w * scale_w): every input pixel
 * becomes a scale_h x scale_w block of copies. Input and output share one quantization. */
typedef struct {
    uint16_t c, in_h, in_w;
    uint16_t scale_h, scale_w;
} t2m_upsample_shape;

void t2m_upsample_nearest_s8(const t2m_upsample_shape *shape, const int8_t *input,
                             int8_t *output);

void t2m_upsample_nearest_f32(const t2m_upsample_shape *shape, const float *input,
                              float *output);

#ifdef __cplusplus
}
#endif

#endif /* T2M_UPSAMPLE_H */

/* Pooling windows as PyTorch defines them, and the adaptive pooling kernels. */
#ifndef T2M_POOL_H
#define T2M_POOL_H

#include "t2m.h"

/* Adaptive pooling with PyTorch's uneven windows: along an axis of n inputs and m outputs,
 * output i reads inputs [floor(i * n / m), ceil((i + 1) * n / m)). Only c, in_h, in_w, out_h
 * and out_w of the shape are read. The average is the window sum divided by its element count,
 * rounded half away from zero (as t2m_avgpool2d_s8). Input and output share one quantization. */
void t2m_adaptive_maxpool2d_s8(const t2m_pool_shape *shape, int32_t act_min, int32_t act_max,
                               const int8_t *input, int8_t *output);
void t2m_adaptive_avgpool2d_s8(const t2m_pool_shape *shape, int32_t act_min, int32_t act_max,
                               const int8_t *input, int8_t *output);
void t2m_adaptive_maxpool2d_f32(const t2m_pool_shape *shape, const float *input, float *output);
void t2m_adaptive_avgpool2d_f32(const t2m_pool_shape *shape, const float *input, float *output);

typedef struct {
    int32_t y0, y1, x0, x1; /* the window clipped to the input: [y0, y1) x [x0, x1) */
    int32_t padded_area;    /* the window clipped to the padded input */
} t2m_pool_window;

static inline t2m_pool_window t2m_pool_window_at(const t2m_pool_shape *s, int32_t oy, int32_t ox)
{
    t2m_pool_window w;
    int32_t y1p, x1p;
    w.y0 = oy * s->stride_h - s->pad_h;
    w.x0 = ox * s->stride_w - s->pad_w;
    y1p = w.y0 + s->k_h;
    x1p = w.x0 + s->k_w;
    if (y1p > s->in_h + s->pad_h) {
        y1p = s->in_h + s->pad_h;
    }
    if (x1p > s->in_w + s->pad_w) {
        x1p = s->in_w + s->pad_w;
    }
    w.padded_area = (y1p - w.y0) * (x1p - w.x0);
    w.y1 = y1p > s->in_h ? s->in_h : y1p;
    w.x1 = x1p > s->in_w ? s->in_w : x1p;
    if (w.y0 < 0) {
        w.y0 = 0;
    }
    if (w.x0 < 0) {
        w.x0 = 0;
    }
    return w;
}

/* The divisor of an average pool at one output position (PyTorch's rule). */
static inline int32_t t2m_pool_divisor(const t2m_pool_shape *s, const t2m_pool_window *w)
{
    if (s->divisor_override != 0) {
        return s->divisor_override;
    }
    if (s->count_include_pad) {
        return w->padded_area;
    }
    return (w->y1 - w->y0) * (w->x1 - w->x0);
}

/* The adaptive window [*start, *end) of output i along an axis of n inputs and m outputs
 * (n, m < 2^16, so the products fit 32 unsigned bits). */
static inline void t2m_adaptive_window(uint32_t i, uint32_t n, uint32_t m, int32_t *start,
                                       int32_t *end)
{
    *start = (int32_t)((i * n) / m);
    *end = (int32_t)(((i + 1u) * n + m - 1u) / m);
}

#endif /* T2M_POOL_H */

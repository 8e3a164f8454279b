/* Pooling windows as PyTorch defines them (private to the runtime). */
#ifndef T2M_POOL_H
#define T2M_POOL_H

#include "t2m.h"

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

#endif /* T2M_POOL_H */

/* Broadcasting two tensors to one output: a 4-D loop over the output (dims, per-sample shape
 * padded with leading 1s) with each input's element strides, 0 along a dimension it repeats. */
#ifndef T2M_BROADCAST_H
#define T2M_BROADCAST_H

#include <stdint.h>

typedef struct {
    uint32_t dims[4];
    uint32_t stride1[4];
    uint32_t stride2[4];
} t2m_broadcast_shape;

#endif /* T2M_BROADCAST_H */

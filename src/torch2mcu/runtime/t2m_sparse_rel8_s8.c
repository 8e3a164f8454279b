/* Sparse int8 conv and fully connected kernels, rel8: 8-bit offset increases with fillers (t2m_sparse_impl.h). */
#define T2M_SPARSE_CONV t2m_conv2d_rel8_s8
#define T2M_SPARSE_FC t2m_fc_rel8_s8
#define T2M_INDEX_T uint8_t
#define T2M_NEXT_OFFSET(off, ix, k) (off) += (ix)[k]
#include "t2m_sparse_impl.h"

/* Sparse int8 conv and fully connected kernels, csr8: 8-bit absolute offsets (t2m_sparse_impl.h). */
#define T2M_SPARSE_CONV t2m_conv2d_csr8_s8
#define T2M_SPARSE_FC t2m_fc_csr8_s8
#define T2M_INDEX_T uint8_t
#define T2M_NEXT_OFFSET(off, ix, k) (off) = (ix)[k]
#include "t2m_sparse_impl.h"

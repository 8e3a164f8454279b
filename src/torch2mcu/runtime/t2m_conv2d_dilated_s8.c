/* Dense int8 dilated convolution (t2m_conv2d.h): the kernels of t2m_conv2d_s8.c with taps
 * dilation_h rows and dilation_w columns apart (t2m_conv2d_impl.h). */
#include "t2m_conv2d.h"

#define T2M_CONV_ROWS t2m_conv2d_rows_dilated_s8
#define T2M_CONV_COLS t2m_conv2d_dilated_s8
#define T2M_DILATED 1
#include "t2m_conv2d_impl.h"

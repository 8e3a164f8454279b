/*
 * torch2mcu runtime: the kernels every generated model calls.
 *
 * Layout: activations are one sample, channel-major (C, H, W), as in PyTorch.
 * Conv weights are (out_c, in_c / groups, k_h, k_w); fully connected weights
 * are (out_features, in_features). All kernels are C99, allocate nothing and
 * never read outside the arrays they are given.
 *
 * int8 arithmetic follows the TensorFlow Lite int8 specification and the
 * integer arithmetic of TFLM's reference kernels (see t2m_requantize below).
 */
#ifndef T2M_H
#define T2M_H

/* The runtime's ABI: the kernels' names, signatures, structs and status codes. Every generated
 * model checks it at compile time, so models from any torch2mcu version with the same ABI link
 * against one copy of this runtime. Raised whenever any of those change. */
#define T2M_RUNTIME_ABI 4

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Conversions that read the same in C and C++ (static_cast / reinterpret_cast there, so the header
 * is clean under -Wold-style-cast): T2M_CAST(type, x) converts a value, T2M_ADDRESS(p) gives a
 * pointer's address as uintptr_t. */
#ifdef __cplusplus
#define T2M_CAST(type, x) static_cast<type>(x)
#define T2M_ADDRESS(p) reinterpret_cast<uintptr_t>(p)
#else
#define T2M_CAST(type, x) ((type)(x))
#define T2M_ADDRESS(p) ((uintptr_t)(p))
#endif

/* One status enum for the whole library. */
typedef enum {
    T2M_OK = 0,
    T2M_ERR_NULL_ARGUMENT = 1,     /* a NULL input, output or arena */
    T2M_ERR_ARENA_TOO_SMALL = 2,   /* <name>_run_with_arena: fewer than <NAME>_ARENA_BYTES */
    T2M_ERR_ARENA_MISALIGNED = 3,  /* <name>_run_with_arena: not <NAME>_ARENA_ALIGN-aligned */
    T2M_ERR_ARENA_OVERLAP = 4      /* input or output inside the arena, but not at its offset */
} t2m_status;

/* A generated model's layers function, called by both <name>_run and <name>_run_with_arena,
 * stays one function (its layer marks are labels, defined once). */
#if defined(__GNUC__) || defined(__clang__)
#define T2M_NOINLINE __attribute__((noinline))
#else
#define T2M_NOINLINE
#endif

/* Places a generated model's static arena in the linker section `name` (a string literal), for
 * <NAME>_ARENA_SECTION; GCC, Clang and armclang syntax. Other compilers: define T2M_SECTION, or
 * give the whole attribute as <NAME>_ARENA_ATTR. */
#ifndef T2M_SECTION
#define T2M_SECTION(name) __attribute__((section(name)))
#endif

/* Whether the n bytes at p overlap the size bytes at a (addresses compared as integers, so
 * unrelated buffers can be compared). */
static inline int t2m_overlaps(const void *p, size_t n, const void *a, size_t size)
{
    const uintptr_t lo = T2M_ADDRESS(a), x = T2M_ADDRESS(p);
    return n != 0u && size != 0u && x < lo + size && lo < x + n;
}

/* Shape of a 2-D convolution (batch 1); a 1-D convolution is one of height 1. pad_h / pad_w
 * are the top / left padding; the bottom / right padding follows from the output shape.
 * pool_h x pool_w > 1 (the int8 kernels, t2m_conv2d_f32 and its variants but the 1x1 one): a
 * max-pool with window == stride is fused; the kernel computes the out_h x out_w conv outputs
 * (multiples of the pool window) and writes (out_c, out_h / pool_h, out_w / pool_w).
 * dilation_h x dilation_w: the rows / columns between kernel taps (0 or 1: adjacent). The sparse
 * kernels ignore it: their stored offsets already include it. */
typedef struct {
    uint16_t in_c, in_h, in_w;
    uint16_t out_c, out_h, out_w;
    uint16_t k_h, k_w;
    uint16_t stride_h, stride_w;
    uint16_t pad_h, pad_w;
    uint16_t groups;
    uint16_t pool_h, pool_w;
    uint16_t dilation_h, dilation_w;
} t2m_conv_shape;

/* Shape of a fully connected layer: out[o] = sum_i w[o][i] * in[i]. */
typedef struct {
    uint16_t in_features, out_features;
} t2m_fc_shape;

/* Shape of a 2-D pooling window (max or average), channel count c. */
typedef struct {
    uint16_t c, in_h, in_w, out_h, out_w;
    uint16_t k_h, k_w;
    uint16_t stride_h, stride_w;
    uint16_t pad_h, pad_w;
    uint8_t count_include_pad; /* average pool: divide by the padded window */
    uint16_t divisor_override; /* average pool: 0 = none */
} t2m_pool_shape;

/* Requantization of an int32 accumulator to int8, per output channel:
 * out = clamp(output_offset + MultiplyByQuantizedMultiplier(acc, multiplier[c], shift[c]),
 *             act_min, act_max), with c = T2M_RQ_CH(q, c) (0 for a per-tensor layer).
 * The conv and fully connected kernels read raw int8 inputs: the input zero point is folded
 * offline into their bias (bias - z_in * sum(w)), and padded borders hold z_in (t2m_pad_s8). */
typedef struct {
    int32_t output_offset;     /* output zero point */
    int32_t act_min, act_max;  /* fused activation as int8 bounds */
    const int32_t *multiplier; /* Q31 mantissa per output channel */
    const int8_t *shift;       /* power-of-two exponent per output channel (> 0: left) */
    int32_t per_tensor;        /* 0: one multiplier and shift per channel; -1: one for all (the
                                * arrays hold one element): channel c reads T2M_RQ_CH(q, c).
                                * The dense fast kernels (t2m_conv2d_fast_s8.c,
                                * t2m_dwconv_fast_s8.c, t2m_fc_fast_s8.c) read per channel and
                                * take per_tensor = 0 only (the generator expands for them), so
                                * their requantization stays as it was measured. */
} t2m_requant_s8;

/* The multiplier / shift element of output channel c. */
#define T2M_RQ_CH(q, c) ((c) & ~(q)->per_tensor)

/* Copy (c, in_h, in_w) into (c, out_h, out_w) at (pad_top, pad_left), filling the rest with a
 * constant; rows and columns beyond out_h / out_w are cropped. */
typedef struct {
    uint16_t c, in_h, in_w, out_h, out_w;
    uint16_t pad_top, pad_left;
} t2m_pad_shape;

/* Sparse int8 weights, walked in place from flash. Row r (one output channel) holds row_len[r]
 * entries: values[] and index[] advance together. The kernel variant says what index holds:
 *   csr8 / csr16: uint8_t / uint16_t input offsets of the weights relative to the window origin
 *                 (conv: ic * in_h * in_w + ky * dilation_h * in_w + kx * dilation_w; fc: the
 *                 input position).
 *   rel8:         uint8_t increases of that offset over the previous entry of the row (the first
 *                 counts from 0); a gap over 255 is bridged by filler entries of value 0. */
typedef struct {
    const int8_t *values;
    const void *index;
    const uint16_t *row_len;
} t2m_sparse_s8;

/* Codebook-coded int8 weights (weight sharing), walked in place from flash: one entry per
 * stored weight in a bit stream read LSB first, code_bits + gap_bits wide (at most 16): the
 * low code_bits index codebook[] (2^code_bits int8 weights), the gap_bits above them count the
 * positions skipped since the previous entry of the row (the first counts from position -1).
 * Wider gaps are bridged by filler entries (a code of weight 0); gap_bits = 0 stores every
 * position. Rows follow each other in the stream; row r has row_len[r] entries, uint8_t when
 * row_len_bytes is 1, else uint16_t. Unlike the other kernels' bias, this one's is the layer's
 * own (the input zero point not folded in: the walk adds input_offset to every input it
 * reads), so that it fits int16 far more often: int16_t when bias_bytes is 2, else int32_t. */
typedef struct {
    const uint8_t *stream;
    const int8_t *codebook;
    const void *row_len;
    const void *bias;
    int32_t input_offset; /* minus the input zero point */
    uint8_t code_bits, gap_bits, row_len_bytes, bias_bytes;
} t2m_cbsparse_s8;

/* Element-wise add of two int8 tensors with their own quantization (TFLM reference_integer_ops::Add). */
typedef struct {
    int32_t input1_offset, input2_offset, output_offset;
    int32_t left_shift;
    int32_t input1_multiplier, input1_shift;
    int32_t input2_multiplier, input2_shift;
    int32_t output_multiplier, output_shift;
    int32_t act_min, act_max;
} t2m_add_params_s8;

/* ---- fixed-point helpers (TFLM's gemmlowp-style double rounding) ---- */

/* (a * b * 2) >> 32, rounded to nearest, saturating the one overflow case. */
static inline int32_t t2m_srdhm(int32_t a, int32_t b)
{
    if (a == INT32_MIN && b == INT32_MIN) {
        return INT32_MAX;
    }
    {
        const int64_t ab = T2M_CAST(int64_t, a) * T2M_CAST(int64_t, b);
        const int64_t nudge = ab >= 0 ? (T2M_CAST(int64_t, 1) << 30) : (1 - (T2M_CAST(int64_t, 1) << 30));
        /* C division truncates toward zero, as the reference does. */
        return T2M_CAST(int32_t, (ab + nudge) / (T2M_CAST(int64_t, 1) << 31));
    }
}

/* x / 2^exponent, rounded to nearest with ties away from zero. */
static inline int32_t t2m_rounding_divide_by_pot(int32_t x, int32_t exponent)
{
    const int32_t mask = T2M_CAST(int32_t, (T2M_CAST(int64_t, 1) << exponent) - 1);
    const int32_t remainder = x & mask;
    const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

/* MultiplyByQuantizedMultiplier: x * multiplier * 2^shift with double rounding.
 * A left shift saturates to int32 instead of overflowing.
 *
 * Equal to t2m_rounding_divide_by_pot(t2m_srdhm(x, multiplier), -shift) for every input, in
 * fewer instructions: SRDHM's "add a sign-dependent nudge, then divide truncating toward zero"
 * is the same as floor((a*b + 2^30) / 2^31) for both signs, and the round-half-away division by
 * 2^e is floor((v + 2^(e-1) - (v < 0)) / 2^e). The tests compare it with the literal definition. */
static inline int32_t t2m_requantize(int32_t x, int32_t multiplier, int32_t shift)
{
    if (shift > 0) {
        int64_t v = T2M_CAST(int64_t, x) * (T2M_CAST(int64_t, 1) << shift);
        if (v > INT32_MAX) {
            v = INT32_MAX;
        } else if (v < INT32_MIN) {
            v = INT32_MIN;
        }
        return t2m_srdhm(T2M_CAST(int32_t, v), multiplier);
    }
    {
        const int32_t e = -shift;
        int32_t high;
        if (x == INT32_MIN && multiplier == INT32_MIN) {
            high = INT32_MAX;
        } else {
            high = T2M_CAST(int32_t, (T2M_CAST(int64_t, x) * multiplier + (T2M_CAST(int64_t, 1) << 30)) >> 31);
        }
        if (e == 0) {
            return high;
        }
        return T2M_CAST(int32_t, (T2M_CAST(int64_t, high) + (T2M_CAST(int64_t, 1) << (e - 1)) - (high < 0 ? 1 : 0)) >> e);
    }
}

static inline int32_t t2m_clamp_i32(int32_t v, int32_t lo, int32_t hi)
{
    return v < lo ? lo : (v > hi ? hi : v);
}

/* ---- int8 kernels ---- */

void t2m_pad_s8(const t2m_pad_shape *shape, int8_t value, const int8_t *input, int8_t *output);

/* Dense conv on a prepared input: output (out_c, out_h, out_w) from input (in_c, in_h, in_w)
 * with no padding (pad_h = pad_w = 0; pad first with t2m_pad_s8) and weights
 * (out_c, in_c/groups, k_h, k_w); bias is the folded bias and is never NULL. Uses the DSP
 * extension's dual 16-bit multiply-accumulate where the core has it.
 * scratch: t2m_conv2d_s8_scratch_bytes(shape) bytes: the gathered receptive fields of one
 * pooling window, shared by the output channels of a group. For groups of one output channel
 * (depthwise) use t2m_conv2d_rows_s8, which walks kernel rows in place and needs no scratch. */
static inline size_t t2m_conv2d_s8_scratch_bytes(const t2m_conv_shape *shape)
{
    return T2M_CAST(size_t, shape->in_c / shape->groups) * shape->k_h * shape->k_w *
           T2M_CAST(size_t, shape->pool_h > 1 ? shape->pool_h : 1) *
           T2M_CAST(size_t, shape->pool_w > 1 ? shape->pool_w : 1);
}

void t2m_conv2d_s8(const t2m_conv_shape *shape, const t2m_requant_s8 *q,
                   const int8_t *input, const int8_t *weights, const int32_t *bias,
                   int8_t *output, int8_t *scratch);

void t2m_conv2d_rows_s8(const t2m_conv_shape *shape, const t2m_requant_s8 *q,
                        const int8_t *input, const int8_t *weights, const int32_t *bias,
                        int8_t *output);

/* Sparse conv on a prepared input, same contract as t2m_conv2d_s8; one function per index
 * kind (csr8, csr16, rel8; see t2m_sparse_s8) so a build links only what it uses. Each weight
 * is loaded once for up to four adjacent output pixels. scratch: 4-byte aligned,
 * t2m_conv2d_sparse_s8_scratch_bytes(shape) bytes: one output row of int32 sums (max-pooled
 * when a pool is fused), requantized when the row is complete. */
static inline size_t t2m_conv2d_sparse_s8_scratch_bytes(const t2m_conv_shape *shape)
{
    return sizeof(int32_t) * T2M_CAST(size_t, shape->out_w / (shape->pool_w > 1 ? shape->pool_w : 1));
}

void t2m_conv2d_csr8_s8(const t2m_conv_shape *shape, const t2m_requant_s8 *q,
                        const t2m_sparse_s8 *weights, const int8_t *input, const int32_t *bias,
                        int8_t *output, int32_t *scratch);
void t2m_conv2d_csr16_s8(const t2m_conv_shape *shape, const t2m_requant_s8 *q,
                         const t2m_sparse_s8 *weights, const int8_t *input, const int32_t *bias,
                         int8_t *output, int32_t *scratch);
void t2m_conv2d_rel8_s8(const t2m_conv_shape *shape, const t2m_requant_s8 *q,
                        const t2m_sparse_s8 *weights, const int8_t *input, const int32_t *bias,
                        int8_t *output, int32_t *scratch);

/* output (out_features) = weights (out_features, in_features) @ input + folded bias. */
void t2m_fc_s8(const t2m_fc_shape *shape, const t2m_requant_s8 *q,
               const int8_t *input, const int8_t *weights, const int32_t *bias,
               int8_t *output);

/* The same layer register-blocked (t2m_fc_fast_s8.c; the generator picks it when the accumulator
 * bound proves the short requantization exact). weights: out_features rows padded with zeros to
 * in4 = in_features rounded up to a multiple of four, as little-endian words of four int8:
 * rows in blocks of four, the four rows of a block interleaved word by word (row 0's inputs
 * 0..3, row 1's, row 2's, row 3's, then inputs 4..7), the last out_features % 4 rows each alone.
 * scratch: t2m_fc_fast_s8_scratch_bytes(shape) bytes, word aligned (the input widened to int16). */
static inline size_t t2m_fc_fast_s8_scratch_bytes(const t2m_fc_shape *shape)
{
    return 2u * ((shape->in_features + 3u) / 4u * 4u);
}
void t2m_fc_fast_s8(const t2m_fc_shape *shape, const t2m_requant_s8 *q,
                    const int8_t *input, const int32_t *weights, const int32_t *bias,
                    int8_t *output, int8_t *scratch);

/* The same layer block-sparse (t2m_fc_blk4_s8.c, format blk4): the weights in blocks of four
 * output rows (a quad; the last may be partial, its missing rows stored as zeros) by four
 * inputs (a group), only the blocks holding a nonzero weight stored. Quad q holds row_len[q]
 * blocks; block b's group is the previous block's plus index[b] (uint8_t; the quad's first
 * counts from group 0; longer gaps are bridged by all-zero filler blocks); values holds four
 * little-endian words of four int8 per block, 4-byte aligned: rows 4q .. 4q+3's weights on the
 * group's inputs. bias: out_features folded biases. scratch: t2m_fc_fast_s8_scratch_bytes. */
void t2m_fc_blk4_s8(const t2m_fc_shape *shape, const t2m_requant_s8 *q,
                    const t2m_sparse_s8 *weights, const int8_t *input, const int32_t *bias,
                    int8_t *output, int8_t *scratch);

/* Sparse fully connected layers, same contract as t2m_fc_s8, one per index kind. */
void t2m_fc_csr8_s8(const t2m_fc_shape *shape, const t2m_requant_s8 *q,
                    const t2m_sparse_s8 *weights, const int8_t *input, const int32_t *bias,
                    int8_t *output);
void t2m_fc_csr16_s8(const t2m_fc_shape *shape, const t2m_requant_s8 *q,
                     const t2m_sparse_s8 *weights, const int8_t *input, const int32_t *bias,
                     int8_t *output);
void t2m_fc_rel8_s8(const t2m_fc_shape *shape, const t2m_requant_s8 *q,
                    const t2m_sparse_s8 *weights, const int8_t *input, const int32_t *bias,
                    int8_t *output);
/* The same layer with codebook-coded weights and their own bias (t2m_cbsparse_s8;
 * t2m_fc_cb_s8.c). */
void t2m_fc_cb_s8(const t2m_fc_shape *shape, const t2m_requant_s8 *q,
                  const t2m_cbsparse_s8 *weights, const int8_t *input, int8_t *output);

/* An entropy-coded constant array (`convert --entropy huffman`; t2m_huffman.c): the blob
 * (blob_bytes) holds the code tables and the bit stream; decoding writes n_fields fields, then
 * zeros up to out_bytes. `work`: room for the lookup tables, 1 << T2M_HUFFMAN_LUT_BITS entries
 * per context of the blob (the generator gives the layer's scratch, before its kernel runs). */
#define T2M_HUFFMAN_LUT_BITS 8u
typedef struct {
    const uint8_t *blob;
    uint32_t blob_bytes, n_fields, out_bytes;
} t2m_huffman;
void t2m_huffman_decode(const t2m_huffman *h, uint8_t *out, uint16_t *work);

/* Input and output share one quantization; result clamped to [act_min, act_max]. */
void t2m_maxpool2d_s8(const t2m_pool_shape *shape, int32_t act_min, int32_t act_max,
                      const int8_t *input, int8_t *output);

/* Rounded integer mean over the window (ties away from zero), same quantization in and out. */
void t2m_avgpool2d_s8(const t2m_pool_shape *shape, int32_t act_min, int32_t act_max,
                      const int8_t *input, int8_t *output);

/* output[i] = requantized input1[i] + input2[i], for i < size. */
void t2m_add_s8(const t2m_add_params_s8 *p, size_t size,
                const int8_t *input1, const int8_t *input2, int8_t *output);

/* The same add (or sub) with each input's rescaling tabulated (t2m_add_fast_s8.c): table1[x]
 * for x in -128..127 (the pointer at x = 0) is twice MultiplyByQuantizedMultiplier((x +
 * input1_offset) << left_shift, input1_multiplier, input1_shift), table2 likewise (negated for
 * sub); the output
 * requantization with multiplier, exponent = -output_shift (1..22) and round =
 * t2m_rq_round(exponent, output_offset), the generator having proven |table1 + table2| < 2^30. */
typedef struct {
    const int32_t *table1, *table2;
    int32_t multiplier, exponent, round;
    int32_t act_min, act_max;
} t2m_add_fast_params_s8;

void t2m_add_fast_s8(const t2m_add_fast_params_s8 *p, size_t size,
                     const int8_t *input1, const int8_t *input2, int8_t *output);

/* output[i] = clamp(input[i], act_min, act_max); same quantization in and out. */
void t2m_clamp_s8(size_t size, int32_t act_min, int32_t act_max,
                  const int8_t *input, int8_t *output);

/* output[i] = table[input[i] + 128]: a pointwise function of one int8 input, tabulated offline
 * from the input and output quantization (sigmoid, tanh, hardswish, ...). table: 256 entries. */
void t2m_lut_s8(size_t size, const int8_t *table, const int8_t *input, int8_t *output);

/* ---- float32 kernels (the dense float baseline) ---- */

void t2m_conv2d_f32(const t2m_conv_shape *shape, float act_min, float act_max,
                    const float *input, const float *weights, const float *bias,
                    float *output);

void t2m_fc_f32(const t2m_fc_shape *shape, float act_min, float act_max,
                const float *input, const float *weights, const float *bias,
                float *output);

void t2m_maxpool2d_f32(const t2m_pool_shape *shape, const float *input, float *output);

void t2m_avgpool2d_f32(const t2m_pool_shape *shape, const float *input, float *output);

void t2m_add_f32(size_t size, float act_min, float act_max,
                 const float *input1, const float *input2, float *output);

void t2m_clamp_f32(size_t size, float act_min, float act_max,
                   const float *input, float *output);

/* The pointwise functions of t2m_pointwise_f32; alpha is LeakyReLU's slope or ELU's alpha. */
typedef enum {
    T2M_FN_SIGMOID, T2M_FN_TANH, T2M_FN_HARDSIGMOID, T2M_FN_HARDSWISH, T2M_FN_LEAKY_RELU,
    T2M_FN_ELU, T2M_FN_GELU, T2M_FN_GELU_TANH, T2M_FN_SILU, T2M_FN_AFFINE
} t2m_fn;

/* output[i] = fn(input[i]), in float math.h functions (expf, tanhf, erff); T2M_FN_AFFINE is
 * input[i] * alpha + beta (arithmetic with a constant). */
void t2m_pointwise_f32(t2m_fn fn, float alpha, float beta, size_t size, const float *input,
                       float *output);

#ifdef __cplusplus
}
#endif

#endif /* T2M_H */

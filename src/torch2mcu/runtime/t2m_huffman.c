/* Decoding of an entropy-coded constant array (t2m_huffman in t2m.h; the format is described in
 * torch2mcu/encodings/huffman.py): the generated model calls it before a layer whose arrays were
 * coded (`convert --entropy huffman`), writing them into the layer's scratch in the arena, where
 * the kernel then walks them as if they were in flash.
 *
 * Canonical Huffman codes, at most 15 bits. Each context's codes of up to T2M_HUFFMAN_LUT_BITS
 * bits are looked up in one step: a table, built in `work` for this call, maps the next bits of
 * the stream to (symbol, length); a longer code (the rarer values) is finished bit by bit from
 * the first code and symbol of each length. Fields are written back LSB first; an array of
 * bytes coded in one context (int8 weights) takes a loop of its own. The generator decodes every
 * blob in Python first and checks that it yields the array; the decoder still never reads past
 * blob_bytes nor writes past out_bytes. */
#include "t2m.h"

#define T2M_HUFFMAN_CONTEXTS 4
#define T2M_HUFFMAN_MAX_LEN 15u

typedef struct {
    const uint8_t *counts, *symbols;
    uint16_t *lut; /* next lut_bits stream bits -> symbol << 4 | length; 0: a longer code */
    uint32_t width, max_len, lut_bits;
    uint16_t first[T2M_HUFFMAN_MAX_LEN + 1u]; /* per length: its first code, */
    uint16_t index[T2M_HUFFMAN_MAX_LEN + 1u]; /* and its first symbol's index */
} t2m_huffman_context;

static void t2m_huffman_table(t2m_huffman_context *c)
{
    uint32_t l, i, code = 0, index = 0;
    const uint32_t size = 1u << c->lut_bits;
    for (i = 0; i < size; ++i) {
        c->lut[i] = 0u;
    }
    for (l = 1; l <= c->max_len; ++l) {
        uint32_t n;
        c->first[l] = (uint16_t)code;
        c->index[l] = (uint16_t)index;
        for (n = 0; l <= c->lut_bits && n < c->counts[l - 1u]; ++n) {
            uint32_t rev = 0, b, at;
            for (b = 0; b < l; ++b) { /* the stream holds the code's top bit first */
                rev |= (((code + n) >> b) & 1u) << (l - 1u - b);
            }
            for (at = rev; at < size; at += 1u << l) {
                c->lut[at] = (uint16_t)(((uint32_t)c->symbols[index + n] << 4) | l);
            }
        }
        code = (code + c->counts[l - 1u]) << 1;
        index += c->counts[l - 1u];
    }
}

/* A code longer than the table's (its first lut_bits bits gathered at once, then bit by bit):
 * symbol << 4 | length, or 0 when none matches (a damaged blob). */
static uint32_t t2m_huffman_long(const t2m_huffman_context *c, uint32_t bits)
{
    uint32_t code = 0, len;
    for (len = 1; len <= c->lut_bits; ++len) {
        code = (code << 1) | ((bits >> (len - 1u)) & 1u);
    }
    for (; len <= c->max_len; ++len) {
        code = (code << 1) | ((bits >> (len - 1u)) & 1u);
        if (code - c->first[len] < c->counts[len - 1u]) {
            return ((uint32_t)c->symbols[c->index[len] + code - c->first[len]] << 4) | len;
        }
    }
    return 0u;
}

void t2m_huffman_decode(const t2m_huffman *h, uint8_t *out, uint16_t *work)
{
    t2m_huffman_context ctx[T2M_HUFFMAN_CONTEXTS];
    const uint8_t *p = h->blob;
    const uint8_t *const pend = h->blob + h->blob_bytes;
    uint8_t *o = out;
    uint8_t *const end = out + h->out_bytes;
    uint32_t k = h->blob_bytes != 0u ? *p++ : 0u, i, j = 0, bits = 0, nbits = 0, acc = 0,
             acc_bits = 0;
    if (k > T2M_HUFFMAN_CONTEXTS) {
        k = 0u; /* not a blob this runtime writes: decode nothing, leave zeros */
    }
    for (i = 0; i < k; ++i) {
        uint32_t n = 0, l;
        if (pend - p < 2 || p[1] > T2M_HUFFMAN_MAX_LEN || pend - p < 2 + p[1]) {
            k = 0u;
            break;
        }
        ctx[i].width = p[0];
        ctx[i].max_len = p[1];
        ctx[i].counts = p + 2;
        for (l = 0; l < ctx[i].max_len; ++l) {
            n += p[2 + l];
        }
        ctx[i].symbols = p + 2 + ctx[i].max_len;
        ctx[i].lut_bits = ctx[i].max_len < T2M_HUFFMAN_LUT_BITS ? ctx[i].max_len
                                                                : T2M_HUFFMAN_LUT_BITS;
        ctx[i].lut = work + i * (1u << T2M_HUFFMAN_LUT_BITS);
        if (ctx[i].width == 0u || ctx[i].width > 8u
            || pend - p < 2 + (int32_t)(ctx[i].max_len + n)) {
            k = 0u;
            break;
        }
        p += 2 + ctx[i].max_len + n;
        if (ctx[i].max_len != 0u) {
            t2m_huffman_table(&ctx[i]);
        }
    }
    if (k == 1u && ctx[0].width == 8u && ctx[0].max_len != 0u) { /* int8 arrays: byte codes */
        const t2m_huffman_context *c = &ctx[0];
        const uint32_t mask = (1u << c->lut_bits) - 1u;
        uint8_t *const stop = h->n_fields < h->out_bytes ? out + h->n_fields : end;
        while (o < stop) {
            uint32_t e;
            while (nbits <= 24u) {
                bits |= (uint32_t)(p < pend ? *p++ : 0u) << nbits;
                nbits += 8u;
            }
            e = c->lut[bits & mask];
            if (e == 0u) {
                e = t2m_huffman_long(c, bits);
                if (e == 0u) {
                    break;
                }
            }
            *o++ = (uint8_t)(e >> 4);
            bits >>= e & 15u;
            nbits -= e & 15u;
        }
        k = 0u; /* done: zeros after */
    }
    for (i = 0; k != 0u && i < h->n_fields; ++i) {
        const t2m_huffman_context *c = &ctx[j];
        uint32_t sym, len;
        while (nbits <= 24u) { /* past the stream: zeros, which no valid code reaches */
            bits |= (uint32_t)(p < pend ? *p++ : 0u) << nbits;
            nbits += 8u;
        }
        if (c->max_len == 0u) { /* stored raw */
            len = c->width;
            sym = bits & ((1u << len) - 1u);
        } else {
            uint32_t e = c->lut[bits & ((1u << c->lut_bits) - 1u)];
            if (e == 0u) {
                e = t2m_huffman_long(c, bits);
                if (e == 0u) {
                    break; /* no code matches: a damaged blob; the rest stays zero */
                }
            }
            sym = e >> 4;
            len = e & 15u;
        }
        bits >>= len;
        nbits -= len;
        acc |= sym << acc_bits;
        acc_bits += c->width;
        while (acc_bits >= 8u) {
            if (o < end) {
                *o++ = (uint8_t)acc;
            }
            acc >>= 8;
            acc_bits -= 8u;
        }
        j = j + 1u == k ? 0u : j + 1u;
    }
    if (acc_bits != 0u && o < end) {
        *o++ = (uint8_t)acc;
    }
    while (o < end) {
        *o++ = 0u;
    }
}

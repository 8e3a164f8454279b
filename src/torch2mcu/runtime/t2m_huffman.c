/* Decoding of an entropy-coded constant array (t2m_huffman in t2m.h; the format is described in
 * torch2mcu/encodings/huffman.py): the generated model calls it before a layer whose arrays were
 * coded (`convert --entropy huffman`), writing them into the layer's scratch in the arena, where
 * the kernel then walks them as if they were in flash. Canonical Huffman codes, read one bit at a
 * time (the tables have at most 15 lengths per field); fields are written back LSB first. The
 * generator decodes every blob in Python first and checks that it yields the array; the decoder
 * still never writes past out_bytes. */
#include "t2m.h"

#define T2M_HUFFMAN_CONTEXTS 4

typedef struct {
    const uint8_t *counts, *symbols;
    uint32_t width, max_len;
} t2m_huffman_context;

void t2m_huffman_decode(const t2m_huffman *h, uint8_t *out)
{
    t2m_huffman_context ctx[T2M_HUFFMAN_CONTEXTS];
    const uint8_t *p = h->blob;
    uint8_t *o = out;
    uint8_t *const end = out + h->out_bytes;
    uint32_t k = *p++, i, j = 0, in = 0, in_bits = 0, acc = 0, acc_bits = 0;
    if (k == 0u || k > T2M_HUFFMAN_CONTEXTS) {
        k = 0u; /* not a blob this runtime writes: decode nothing, leave zeros */
    }
    for (i = 0; i < k; ++i) {
        uint32_t n = 0, l;
        ctx[i].width = p[0];
        ctx[i].max_len = p[1];
        ctx[i].counts = p + 2;
        for (l = 0; l < ctx[i].max_len; ++l) {
            n += p[2 + l];
        }
        ctx[i].symbols = p + 2 + ctx[i].max_len;
        p += 2 + ctx[i].max_len + n;
    }
    for (i = 0; k != 0u && i < h->n_fields; ++i) {
        const t2m_huffman_context *c = &ctx[j];
        uint32_t sym = 0;
        if (c->max_len == 0u) { /* stored raw */
            uint32_t b;
            for (b = 0; b < c->width; ++b) {
                if (in_bits == 0u) {
                    in = *p++;
                    in_bits = 8u;
                }
                sym |= (in & 1u) << b;
                in >>= 1;
                --in_bits;
            }
        } else {
            uint32_t code = 0, first = 0, index = 0, l;
            for (l = 0; l < c->max_len; ++l) {
                uint32_t count = c->counts[l];
                if (in_bits == 0u) {
                    in = *p++;
                    in_bits = 8u;
                }
                code |= in & 1u;
                in >>= 1;
                --in_bits;
                if (code - first < count) {
                    sym = c->symbols[index + code - first];
                    break;
                }
                index += count;
                first = (first + count) << 1;
                code <<= 1;
            }
        }
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

/*
 * Host-side helper for the emulator (compiled for the host, not for the Cortex-M): a unicorn
 * UC_HOOK_BLOCK callback that keeps the block histogram of torch2mcu.targets.emulator in C,
 * so that counting costs a few nanoseconds per executed block instead of a Python call.
 *
 * For each executed block it adds one to hits[slot] of the block's key (address << 16 | size),
 * and when the block is not the fall-through of the previous one, one to jumps[slot] of the
 * previous block (its final branch was taken). The table is open-addressed; Python owns the
 * arrays, reads them after the run (and at layer marks), and prices the blocks itself.
 */
#include <stdint.h>

typedef struct {
    uint64_t *keys;      /* 0 = empty slot; a key is never 0 (no code at address 0) */
    uint64_t *hits;
    uint64_t *jumps;
    uint64_t mask;       /* capacity - 1, capacity a power of two */
    uint64_t used;
    uint64_t prev_slot;  /* slot of the previous block; mask + 1 before the first block */
    uint64_t prev_end;   /* address after the previous block */
    uint64_t overflow;   /* set when the table is half full: the counts are then incomplete */
} t2m_block_counter;

void t2m_count_block(void *uc, uint64_t address, uint32_t size, void *user)
{
    t2m_block_counter *c = (t2m_block_counter *)user;
    const uint64_t key = (address << 16) | size;
    uint64_t slot = ((key * 0x9E3779B97F4A7C15ull) >> 32) & c->mask;
    (void)uc;
    while (c->keys[slot] != key) {
        if (c->keys[slot] == 0) {
            if (2 * (c->used + 1) > c->mask + 1) {
                c->overflow = 1;
                return;
            }
            c->keys[slot] = key;
            c->used++;
            break;
        }
        slot = (slot + 1) & c->mask;
    }
    if (address != c->prev_end && c->prev_slot <= c->mask) {
        c->jumps[c->prev_slot]++;
    }
    c->hits[slot]++;
    c->prev_slot = slot;
    c->prev_end = address + size;
}

/* clamp4: hand-written test fixture for torch2mcu.targets.cortex_m: one layer, t2m_clamp_s8 on
 * four int8 values. Small enough to count its instructions by hand from the disassembly. */
#ifndef CLAMP4_H
#define CLAMP4_H

#include "t2m.h"

#define CLAMP4_INPUT_SIZE 4
#define CLAMP4_OUTPUT_SIZE 4
#define CLAMP4_ARENA_BYTES 0

t2m_status clamp4_run(const int8_t *input, int8_t *output);

#endif /* CLAMP4_H */

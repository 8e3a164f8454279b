/* tiny: hand-written test fixture for torch2mcu.targets.cortex_m (int8).
 * Written by tests/fixtures_cm/make_tiny.py; follows the generated-folder contract. */
#ifndef TINY_H
#define TINY_H

#include "t2m.h"

#define TINY_INPUT_SIZE 36
#define TINY_OUTPUT_SIZE 4
#define TINY_ARENA_BYTES 156

t2m_status tiny_run(const int8_t *input, int8_t *output);

#endif /* TINY_H */

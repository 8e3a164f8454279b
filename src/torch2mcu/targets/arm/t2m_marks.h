/*
 * Layer marks for per-layer instruction counts (force-included by torch2mcu when it builds
 * a model with layer_marks=True).
 *
 * T2M_LAYER_MARK(i) emits no instruction: it defines the (file-local) label t2m_layer_mark_<i>
 * at the point where layer i starts (i = n: after the last layer). The emulator reads the
 * labels' addresses from the ELF and notes the instruction count each time execution
 * reaches one. Because nothing is emitted and the asm is only a compiler barrier for
 * memory, the marked model normally compiles to the same instructions as the unmarked one;
 * torch2mcu checks that the totals agree.
 */
#ifndef T2M_MARKS_H
#define T2M_MARKS_H

#define T2M_LAYER_MARK(i) \
    __asm__ volatile("t2m_layer_mark_%c0:" : : "i"(i) : "memory")

#endif /* T2M_MARKS_H */

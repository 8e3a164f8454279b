/*
 * torch2mcu bare-metal startup for Cortex-M (ARMv6-M and ARMv7-M / ARMv8-M Mainline).
 *
 * Vector table (initial stack pointer, reset, and one default handler for every fault),
 * and a reset handler that
 *   1. copies .data from its load image in flash to RAM,
 *   2. zeroes .bss,
 *   3. paints the free RAM between the end of .bss and the stack pointer with
 *      T2M_STACK_PAINT, so the stack high-water mark can be read back later,
 *   4. on cores with an FPU (hard or softfp float ABI), grants full access to CP10/CP11
 *      in CPACR before any floating-point instruction runs,
 *   5. calls main(), then stops in t2m_halt.
 * Only 16-bit Thumb instructions that ARMv6-M has are used (plus the FPU block), so one
 * file serves every target.
 */
    .syntax unified
    .thumb

    .equ T2M_STACK_PAINT, 0xC5C5C5C5
    .equ T2M_CPACR, 0xE000ED88

    .section .isr_vector, "a", %progbits
    .align 2
    .global t2m_vectors
    .type t2m_vectors, %object
t2m_vectors:
    .word __stack_top           /* initial main stack pointer */
    .word Reset_Handler         /* reset */
    .rept 14
    .word Default_Handler       /* NMI, HardFault, ..., SysTick */
    .endr
    .size t2m_vectors, . - t2m_vectors

    .text
    .align 1
    .global Reset_Handler
    .type Reset_Handler, %function
    .thumb_func
Reset_Handler:
    /* 1. .data: copy words from __data_load (flash) to [__data_start, __data_end). */
    ldr r0, =__data_load
    ldr r1, =__data_start
    ldr r2, =__data_end
1:  cmp r1, r2
    bhs 2f
    ldr r3, [r0]
    str r3, [r1]
    adds r0, r0, #4
    adds r1, r1, #4
    b 1b
2:  /* 2. .bss: zero [__bss_start, __bss_end). */
    ldr r1, =__bss_start
    ldr r2, =__bss_end
    movs r3, #0
3:  cmp r1, r2
    bhs 4f
    str r3, [r1]
    adds r1, r1, #4
    b 3b
4:  /* 3. paint [__stack_limit, sp) with the stack pattern. */
    ldr r1, =__stack_limit
    mov r2, sp
    ldr r3, =T2M_STACK_PAINT
5:  cmp r1, r2
    bhs 6f
    str r3, [r1]
    adds r1, r1, #4
    b 5b
6:
#if defined(__ARM_FP)
    /* 4. CPACR: CP10 and CP11 full access (bits 20-23), then let the write take effect. */
    ldr r0, =T2M_CPACR
    ldr r1, [r0]
    ldr r2, =(0xF << 20)
    orrs r1, r1, r2
    str r1, [r0]
    dsb
    isb
#endif
    /* 5. run the program. */
    bl main
    b t2m_halt
    .pool
    .size Reset_Handler, . - Reset_Handler

    .align 1
    .global Default_Handler
    .type Default_Handler, %function
    .thumb_func
Default_Handler:
    b Default_Handler
    .size Default_Handler, . - Default_Handler

    /* Where a finished program (and every call the emulator makes) ends: a branch to self. */
    .align 1
    .global t2m_halt
    .type t2m_halt, %function
    .thumb_func
t2m_halt:
    b t2m_halt
    .size t2m_halt, . - t2m_halt

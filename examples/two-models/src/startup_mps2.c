/* Vector table and reset handler for the MPS2 AN386 (Cortex-M4F), with mps2_an386.ld. */
#include <stdint.h>

#include "bsp.h"

extern uint32_t __stack_top[], __data_load[], __data_start[], __data_end[], __bss_start[], __bss_end[];

int main(void);
void Reset_Handler(void);
void Fault_Handler(void);

__attribute__((section(".isr_vector"), used)) void (*const vectors[16])(void) = {
    (void (*)(void))(uintptr_t)__stack_top,
    Reset_Handler,
    Fault_Handler, Fault_Handler, Fault_Handler, Fault_Handler, Fault_Handler, /* NMI .. UsageFault */
    0, 0, 0, 0,
    Fault_Handler, Fault_Handler, 0, Fault_Handler, Fault_Handler, /* SVC, DebugMon, -, PendSV, SysTick */
};

void Reset_Handler(void)
{
    /* The build uses the FPU (-mfloat-abi=hard): give CP10/CP11 full access first. */
    *(volatile uint32_t *)0xE000ED88u |= 0xFu << 20;
    __asm__ volatile("dsb\n\tisb" ::: "memory");
    volatile uint32_t *dst = __data_start;
    const uint32_t *src = __data_load;
    while (dst < __data_end) {
        *dst++ = *src++;
    }
    for (dst = __bss_start; dst < __bss_end;) {
        *dst++ = 0u;
    }
    bsp_exit(main());
}

void Fault_Handler(void)
{
    bsp_puts("\nfault\n");
    bsp_exit(99);
}

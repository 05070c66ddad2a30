/* BSP of the MPS2 AN386 in QEMU: CMSDK APB UART0 (polled) and a semihosting exit.
 * Written for this example; tinyedge's exports contain no board code, a product brings its own. */
#include "bsp.h"

#define REG(addr) (*(volatile uint32_t *)(uintptr_t)(addr))
#define UART0 0x40004000u
#define UART_DATA REG(UART0 + 0x00u)
#define UART_STATE REG(UART0 + 0x04u) /* bit 0: TX buffer full */
#define UART_CTRL REG(UART0 + 0x08u)  /* bit 0: TX enable */
#define UART_BAUDDIV REG(UART0 + 0x10u)

#define CPU_HZ 25000000u
#define BAUD 115200u

void bsp_init(void)
{
    UART_BAUDDIV = CPU_HZ / BAUD; /* >= 16, as the CMSDK UART requires */
    UART_CTRL = 0x1u;
}

static void uart_putc(char c)
{
    while (UART_STATE & 0x1u) {
    }
    UART_DATA = (uint32_t)(uint8_t)c;
}

void bsp_puts(const char *s)
{
    while (*s) {
        if (*s == '\n') {
            uart_putc('\r');
        }
        uart_putc(*s++);
    }
}

void bsp_exit(int code)
{
    while (UART_STATE & 0x1u) { /* let the last byte leave */
    }
    /* Semihosting SYS_EXIT_EXTENDED (0x20) with ADP_Stopped_ApplicationExit (0x20026) and the code. */
    volatile uint32_t args[2] = {0x20026u, (uint32_t)code};
    register uint32_t r0 __asm__("r0") = 0x20u;
    register volatile uint32_t *r1 __asm__("r1") = args;
    __asm__ volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
    for (;;) {
        __asm__ volatile("wfi");
    }
}

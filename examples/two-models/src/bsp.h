/* The board support this application needs: a UART to print on, and a way to stop.
 * Here for the Arm MPS2 AN386 (Cortex-M4F) as QEMU emulates it; on your board, your BSP provides these. */
#ifndef BSP_H
#define BSP_H

#include <stdint.h>

void bsp_init(void);
void bsp_puts(const char *s);
/* Ends the program: under QEMU (-semihosting) `code` becomes QEMU's exit status. Never returns. */
void bsp_exit(int code) __attribute__((noreturn));

#endif

@ arm (EABI, ARM state): svc #0, nr in r7 (uname 122, write 4, exit 1); r4 survives
	.syntax unified
	.arm
	.globl _start
_start:
	ldr r4, [sp, #4]
	ldrb r4, [r4]
	sub sp, sp, #512
	mov r0, sp
	mov r7, #122
	svc #0
	mov r0, #1
	add r1, sp, #260
	mov r2, #65
	mov r7, #4
	svc #0
	mov r0, r4
	mov r7, #1
	svc #0

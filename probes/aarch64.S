// aarch64: svc #0, nr in x8 (uname 160, write 64, exit 93); x19 is callee-saved
	.globl _start
_start:
	ldr x19, [sp, #8]
	ldrb w19, [x19]
	sub sp, sp, #512
	mov x0, sp
	mov x8, #160
	svc #0
	mov x0, #1
	add x1, sp, #260
	mov x2, #65
	mov x8, #64
	svc #0
	mov x0, x19
	mov x8, #93
	svc #0

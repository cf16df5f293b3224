! sh4: trapa #0x13/#0x11 (3 or 1 args), nr in r3, args r4-r6 (uname 122, write 4, exit 1); r8 survives
	.globl _start
_start:
	mov.l @(4,r15), r8
	mov.b @r8, r8
	extu.b r8, r8
	mov #-128, r0
	shll2 r0
	add r0, r15
	mov r15, r4
	mov #122, r3
	trapa #0x11
	mov #1, r4
	mov r15, r5
	mov #65, r0
	shll2 r0
	add r0, r5
	mov #65, r6
	mov #4, r3
	trapa #0x13
	mov r8, r4
	mov #1, r3
	trapa #0x11

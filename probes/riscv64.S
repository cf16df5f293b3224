# riscv64: ecall, nr in a7 (uname 160, write 64, exit 93); s1 is callee-saved
	.globl _start
_start:
	ld s1, 8(sp)
	lbu s1, 0(s1)
	addi sp, sp, -512
	mv a0, sp
	li a7, 160
	ecall
	li a0, 1
	addi a1, sp, 260
	li a2, 65
	li a7, 64
	ecall
	mv a0, s1
	li a7, 93
	ecall

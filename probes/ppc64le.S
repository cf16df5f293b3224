# ppc64le (ELFv2): sc, nr in r0 (uname 122, write 4, exit 1); r31 is callee-saved
	.abiversion 2
	.globl _start
_start:
	ld 31, 8(1)
	lbz 31, 0(31)
	addi 1, 1, -512
	mr 3, 1
	li 0, 122
	sc
	li 3, 1
	addi 4, 1, 260
	li 5, 65
	li 0, 4
	sc
	mr 3, 31
	li 0, 1
	sc

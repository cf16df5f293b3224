# alpha: callsys, nr in v0 (uname 339, write 4, exit 1); s0 survives
	.set noat
	.arch ev6
	.globl _start
_start:
	ldq $9, 8($30)
	ldbu $9, 0($9)
	lda $30, -512($30)
	mov $30, $16
	lda $0, 339($31)
	callsys
	lda $16, 1($31)
	lda $17, 260($30)
	lda $18, 65($31)
	lda $0, 4($31)
	callsys
	mov $9, $16
	lda $0, 1($31)
	callsys

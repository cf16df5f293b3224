# mips64el (n64): syscall, nr in v0 (uname 5061, write 5001, exit 5058); s0 survives
	.set noreorder
	.globl __start
__start:
	ld $s0, 8($sp)
	lbu $s0, 0($s0)
	daddiu $sp, $sp, -512
	move $a0, $sp
	li $v0, 5061
	syscall
	li $a0, 1
	daddiu $a1, $sp, 260
	li $a2, 65
	li $v0, 5001
	syscall
	move $a0, $s0
	li $v0, 5058
	syscall

# mipsn32el/mipsn32 (n32): syscall, nr in v0 (uname 6061, write 6001, exit 6058); s0 survives.
# n32 processes get 32-bit pointers on the stack, like o32.
	.set noreorder
	.globl __start
__start:
	lw $s0, 4($sp)
	lbu $s0, 0($s0)
	addiu $sp, $sp, -512
	move $a0, $sp
	li $v0, 6061
	syscall
	li $a0, 1
	addiu $a1, $sp, 260
	li $a2, 65
	li $v0, 6001
	syscall
	move $a0, $s0
	li $v0, 6058
	syscall

# mipsel (o32): syscall, nr in v0 (uname 4122, write 4004, exit 4001); s0 survives.
# The nops fill MIPS I load delay slots.
	.set noreorder
	.globl __start
__start:
	lw $s0, 4($sp)
	nop
	lbu $s0, 0($s0)
	nop
	addiu $sp, $sp, -512
	move $a0, $sp
	li $v0, 4122
	syscall
	li $a0, 1
	addiu $a1, $sp, 260
	li $a2, 65
	li $v0, 4004
	syscall
	move $a0, $s0
	li $v0, 4001
	syscall

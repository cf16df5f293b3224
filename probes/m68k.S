| m68k: trap #0, nr in d0, args d1-d3 (uname 122, write 4, exit 1); d5 survives
	.globl _start
_start:
	move.l 4(%sp), %a0
	moveq #0, %d5
	move.b (%a0), %d5
	lea -512(%sp), %sp
	move.l #122, %d0
	move.l %sp, %d1
	trap #0
	moveq #4, %d0
	moveq #1, %d1
	lea 260(%sp), %a1
	move.l %a1, %d2
	moveq #65, %d3
	trap #0
	moveq #1, %d0
	move.l %d5, %d1
	trap #0

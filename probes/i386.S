# i386: int 0x80, nr in eax (uname 122, write 4, exit 1); esi survives
	.intel_syntax noprefix
	.globl _start
_start:
	mov esi, [esp+4]
	movzx esi, byte ptr [esi]
	sub esp, 512
	mov eax, 122
	mov ebx, esp
	int 0x80
	mov eax, 4
	mov ebx, 1
	lea ecx, [esp+260]
	mov edx, 65
	int 0x80
	mov eax, 1
	mov ebx, esi
	int 0x80

# x86_64: syscall, nr in rax (uname 63, write 1, exit 60); rbx survives syscalls
	.intel_syntax noprefix
	.globl _start
_start:
	mov rbx, [rsp+8]
	movzx ebx, byte ptr [rbx]
	sub rsp, 512
	mov eax, 63
	mov rdi, rsp
	syscall
	mov eax, 1
	mov edi, 1
	lea rsi, [rsp+260]
	mov edx, 65
	syscall
	mov eax, 60
	mov edi, ebx
	syscall

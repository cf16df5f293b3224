# The launcher of `run --accelerate` (src/emulation/accelerate.rs, LAUNCHER_X86_64): a static
# x86_64 program that execve(2)s the first string of its table with the table's strings, then
# its own argv[1..], as the argument vector, and the environment it got. binfmtctl appends the
# table after the code (8-aligned, right where `table` is):
#   u64 N, u64 offset[N] (each from the table's start), then the NUL-terminated strings.
# If execve fails it exits with 127. Not part of gen.sh (the probes' generator); regenerate the
# bytes with:
#   as --64 -o l.o launcher-x86_64.S && objcopy -O binary -j .text l.o l.bin && od -An -tx1 -v l.bin
        .text
        .globl _start
_start:
        mov     (%rsp), %rcx            # argc
        lea     8(%rsp), %rsi           # argv
        lea     8(%rsi,%rcx,8), %rdx    # envp
        lea     table(%rip), %r9
        mov     (%r9), %r8              # N
        lea     (%r8,%rcx), %rax        # N + argc pointers (N + argc - 1 strings and NULL)
        shl     $3, %rax
        sub     %rax, %rsp
        and     $-16, %rsp
        mov     %rsp, %rdi              # the new argv
        xor     %r10, %r10
1:      cmp     %r8, %r10
        jae     2f
        mov     8(%r9,%r10,8), %rax
        add     %r9, %rax
        mov     %rax, (%rdi,%r10,8)
        inc     %r10
        jmp     1b
2:      lea     -8(%rdi,%r8,8), %r11    # so that argv[i] lands at new argv[N + i - 1]
        mov     $1, %r10
3:      cmp     %rcx, %r10
        ja      4f
        mov     (%rsi,%r10,8), %rax     # argv[1] .. argv[argc] (the NULL)
        mov     %rax, (%r11,%r10,8)
        inc     %r10
        jmp     3b
4:      mov     %rdi, %rsi
        mov     (%rdi), %rdi
        mov     $59, %eax               # execve
        syscall
        mov     $127, %edi
        mov     $60, %eax               # exit
        syscall
        .p2align 3
table:

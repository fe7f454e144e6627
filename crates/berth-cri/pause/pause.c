/*
 * berth's pause program: the first process of every pod sandbox.
 *
 * It holds the pod's namespaces open and does nothing else: it waits for
 * signals, reaps any child that ends (as PID 1 of the pod's PID namespace
 * it inherits orphans), and exits 0 on SIGINT or SIGTERM.
 *
 * Built with -nostdlib -static: no libc, raw system calls only, so the
 * image is one small file. Instead of handlers and pause(2) it blocks the
 * three signals and takes them with rt_sigtimedwait(2): the same wait
 * without a handler's race between the check and the sleep, and blocked
 * signals reach PID 1 of a namespace even though it has no handlers.
 */

#if defined(__x86_64__)
#define SYS_rt_sigprocmask 14
#define SYS_wait4 61
#define SYS_rt_sigtimedwait 128
#define SYS_exit_group 231

static long syscall4(long n, long a, long b, long c, long d)
{
	long ret;
	register long r10 __asm__("r10") = d;
	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10)
			 : "rcx", "r11", "memory");
	return ret;
}

__asm__(".text\n"
	".global _start\n"
	"_start:\n"
	"	xor %rbp, %rbp\n"
	"	and $-16, %rsp\n"
	"	call pause_main\n"
	"	hlt\n");
#elif defined(__aarch64__)
#define SYS_rt_sigprocmask 135
#define SYS_rt_sigtimedwait 137
#define SYS_wait4 260
#define SYS_exit_group 94

static long syscall4(long n, long a, long b, long c, long d)
{
	register long x8 __asm__("x8") = n;
	register long x0 __asm__("x0") = a;
	register long x1 __asm__("x1") = b;
	register long x2 __asm__("x2") = c;
	register long x3 __asm__("x3") = d;
	__asm__ volatile("svc 0"
			 : "+r"(x0)
			 : "r"(x8), "r"(x1), "r"(x2), "r"(x3)
			 : "memory");
	return x0;
}

__asm__(".text\n"
	".global _start\n"
	"_start:\n"
	"	mov x29, #0\n"
	"	bl pause_main\n"
	"	b .\n");
#else
#error "pause.c supports x86_64 and aarch64"
#endif

#define SIGINT 2
#define SIGTERM 15
#define SIGCHLD 17
#define SIG_BLOCK 0
#define WNOHANG 1
#define EINTR 4

/* The kernel's sigset: one bit per signal, signal n at bit n-1. */
typedef unsigned long kernel_sigset;
#define BIT(sig) (1UL << ((sig)-1))

/* siginfo is 128 bytes; only the signal number (first int) is read. */
struct siginfo {
	int signo;
	int pad[31];
};

static void reap(void)
{
	/* Every exited child; none left or none exited ends the loop. */
	while (syscall4(SYS_wait4, -1, 0, WNOHANG, 0) > 0) {
	}
}

void pause_main(void) __attribute__((noreturn, used));
void pause_main(void)
{
	kernel_sigset set = BIT(SIGINT) | BIT(SIGTERM) | BIT(SIGCHLD);
	struct siginfo info;

	if (syscall4(SYS_rt_sigprocmask, SIG_BLOCK, (long)&set, 0, sizeof set) < 0)
		syscall4(SYS_exit_group, 1, 0, 0, 0);
	for (;;) {
		long sig = syscall4(SYS_rt_sigtimedwait, (long)&set, (long)&info, 0,
				    sizeof set);
		if (sig == SIGINT || sig == SIGTERM)
			syscall4(SYS_exit_group, 0, 0, 0, 0);
		if (sig == SIGCHLD)
			reap();
		/* -EINTR (a stop/continue) or anything else: wait again. */
	}
}

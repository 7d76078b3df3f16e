/*
 * kvm-bench.c — the C baseline of the guestmem KVM benchmark.
 *
 * It issues the same syscalls as the native driver (`packages/kvm/src/native/`) through the same
 * glibc wrappers (open, ioctl, fallocate, mmap, munmap, close), with nothing around them, so that
 * `src/bench/kvm-bench.ts` can print "native driver / C" ratios. The workloads, per repetition:
 *
 *   setup (untimed)   open /dev/kvm, KVM_CREATE_VM, KVM_CREATE_GUEST_MEMFD(1 GiB, MMAP|INIT_SHARED),
 *                     then a pre-fault: mmap, touch every page, munmap, punch. On a VM guest with
 *                     free page reporting (Firecracker's balloon, order 9), pages freed more than
 *                     ~2 s ago have been handed back to the host, and the first guest touch of such
 *                     a page costs a hypervisor fault; without the pre-fault whichever program runs
 *                     first after a pause pays them. Afterwards the timed work reuses these pages.
 *   fallocate_1g      fallocate(KEEP_SIZE, 0, 1 GiB)                    one call
 *   punch_1g          fallocate(PUNCH_HOLE|KEEP_SIZE, 0, 1 GiB)          one call, file fully allocated
 *   touch_1g          mmap(1 GiB, RW, SHARED) + one byte write per 4 KiB page (262,144 first-touch
 *                     faults on an empty file); munmap and the punch that empties the file again
 *                     are untimed
 *   retouch_1g        (diagnostic) one more byte write per page of the same, now fully mapped
 *                     1 GiB: no fault, so it measures the access path alone
 *   fallocate_4k      16,384 x fallocate(KEEP_SIZE, i * 4 KiB, 4 KiB)     (64 MiB), then an untimed punch
 *   check_extension   10^6 x ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_GUEST_MEMFD)
 *
 * Usage: kvm-bench [reps [all|bulk|small]]   (default 5 all). `bulk` runs the pre-fault and the
 * 1 GiB workloads, `small` the 4 KiB fallocates and the ioctls (the TypeScript harness runs the two
 * sets separately so that the short per-call workloads can be interleaved more tightly).
 * Prints one JSON object: for each workload run, the number of operations per sample, every
 * sample's total in ns, the median total and the median per operation. Errors go to stderr with
 * exit status 1.
 *
 * Build: gcc -O2 -o kvm-bench kvm-bench.c  (the system <linux/kvm.h> may predate guest_memfd, so the
 * few guest_memfd definitions are spelled out below from the 6.18 uAPI).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/ioctl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

/* ---- 6.18 uAPI (include/uapi/linux/kvm.h), spelled out because distro headers may be older ---- */
#define BENCH_KVMIO 0xAE
#define BENCH_KVM_CREATE_VM _IO(BENCH_KVMIO, 0x01)
#define BENCH_KVM_CHECK_EXTENSION _IO(BENCH_KVMIO, 0x03)
#define BENCH_KVM_CAP_GUEST_MEMFD 234
#define BENCH_GUEST_MEMFD_FLAG_MMAP (1ULL << 0)
#define BENCH_GUEST_MEMFD_FLAG_INIT_SHARED (1ULL << 1)

struct bench_create_guest_memfd {
	uint64_t size;
	uint64_t flags;
	uint64_t reserved[6];
};
#define BENCH_KVM_CREATE_GUEST_MEMFD _IOWR(BENCH_KVMIO, 0xd4, struct bench_create_guest_memfd)

#define GIB (1ULL << 30)
#define PAGE 4096ULL
#define SMALL_OPS 16384
#define IOCTL_OPS 1000000
#define MAX_REPS 64

enum { W_FALLOCATE_1G, W_PUNCH_1G, W_TOUCH_1G, W_RETOUCH_1G, W_FALLOCATE_4K, W_CHECK_EXTENSION, W_COUNT };
static const char *const names[W_COUNT] = { "fallocate_1g", "punch_1g", "touch_1g", "retouch_1g", "fallocate_4k",
					    "check_extension" };
static const long ops[W_COUNT] = { 1, 1, GIB / PAGE, GIB / PAGE, SMALL_OPS, IOCTL_OPS };
static double samples[W_COUNT][MAX_REPS];
static int ran[W_COUNT];

static void die(const char *what)
{
	fprintf(stderr, "kvm-bench: %s: %s\n", what, strerror(errno));
	exit(1);
}

static double now_ns(void)
{
	struct timespec ts;
	/* Why: a monotonic clock, the same one Node's process.hrtime reads. */
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static double median(const double *v, int n)
{
	double s[MAX_REPS];
	memcpy(s, v, sizeof(double) * (size_t)n);
	qsort(s, (size_t)n, sizeof(double), cmp_double);
	return n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

static void punch_all(int gmem)
{
	/* Why: free every page so the next workload starts from an empty file (untimed). */
	if (fallocate(gmem, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, (off_t)GIB) < 0)
		die("fallocate(PUNCH_HOLE) reset");
}

static void prefault(int gmem)
{
	/* Why: map the file to touch its pages once, outside the timed regions (see header). */
	volatile uint8_t *map = mmap(NULL, GIB, PROT_READ | PROT_WRITE, MAP_SHARED, gmem, 0);
	if (map == MAP_FAILED)
		die("mmap(prefault)");
	for (uint64_t off = 0; off < GIB; off += PAGE)
		map[off] = 1;
	/* Why: drop the pre-fault mapping before the timed work. */
	if (munmap((void *)map, GIB) < 0)
		die("munmap(prefault)");
	punch_all(gmem);
}

static void one_rep(int kvm, int rep, int bulk, int small)
{
	/* Why: guest_memfd is created on a VM, so each repetition gets a fresh one. */
	int vm = ioctl(kvm, BENCH_KVM_CREATE_VM, 0UL);
	if (vm < 0)
		die("ioctl(KVM_CREATE_VM)");

	struct bench_create_guest_memfd args = {
		.size = GIB,
		.flags = BENCH_GUEST_MEMFD_FLAG_MMAP | BENCH_GUEST_MEMFD_FLAG_INIT_SHARED,
	};
	/* Why: the file under test; MMAP|INIT_SHARED so the host can map and touch it. */
	int gmem = ioctl(vm, BENCH_KVM_CREATE_GUEST_MEMFD, &args);
	if (gmem < 0)
		die("ioctl(KVM_CREATE_GUEST_MEMFD)");

	double t0, t1;
	if (!bulk)
		goto small_set;
	prefault(gmem);

	t0 = now_ns();
	/* Why: workload fallocate_1g — allocate all 262,144 folios in one call. */
	if (fallocate(gmem, FALLOC_FL_KEEP_SIZE, 0, (off_t)GIB) < 0)
		die("fallocate(KEEP_SIZE, 1 GiB)");
	t1 = now_ns();
	samples[W_FALLOCATE_1G][rep] = t1 - t0;

	t0 = now_ns();
	/* Why: workload punch_1g — free the whole, fully allocated file in one call. */
	if (fallocate(gmem, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, (off_t)GIB) < 0)
		die("fallocate(PUNCH_HOLE, 1 GiB)");
	t1 = now_ns();
	samples[W_PUNCH_1G][rep] = t1 - t0;

	t0 = now_ns();
	/* Why: workload touch_1g — the host's window onto the (empty) file. */
	volatile uint8_t *map = mmap(NULL, GIB, PROT_READ | PROT_WRITE, MAP_SHARED, gmem, 0);
	if (map == MAP_FAILED)
		die("mmap(1 GiB)");
	/* One byte per page: each write faults in, zeroes and maps one folio. */
	for (uint64_t off = 0; off < GIB; off += PAGE)
		map[off] = 1;
	t1 = now_ns();
	samples[W_TOUCH_1G][rep] = t1 - t0;

	t0 = now_ns();
	/* Diagnostic: the same writes again; every page is mapped now, so nothing faults. */
	for (uint64_t off = 0; off < GIB; off += PAGE)
		map[off] = 2;
	t1 = now_ns();
	samples[W_RETOUCH_1G][rep] = t1 - t0;
	/* Why: drop the mapping (and its file reference) outside the timed region. */
	if (munmap((void *)map, GIB) < 0)
		die("munmap");
	punch_all(gmem);
	ran[W_FALLOCATE_1G] = ran[W_PUNCH_1G] = ran[W_TOUCH_1G] = ran[W_RETOUCH_1G] = 1;

small_set:
	if (!small)
		goto done;
	t0 = now_ns();
	for (uint64_t i = 0; i < SMALL_OPS; i++) {
		/* Why: workload fallocate_4k — one folio per call, the per-syscall cost dominates. */
		if (fallocate(gmem, FALLOC_FL_KEEP_SIZE, (off_t)(i * PAGE), (off_t)PAGE) < 0)
			die("fallocate(KEEP_SIZE, 4 KiB)");
	}
	t1 = now_ns();
	samples[W_FALLOCATE_4K][rep] = t1 - t0;
	punch_all(gmem);

done:
	/* Why: release the file, then the VM (the file pinned it). */
	if (close(gmem) < 0 || close(vm) < 0)
		die("close");
	if (!small)
		return;

	t0 = now_ns();
	for (long i = 0; i < IOCTL_OPS; i++) {
		/* Why: workload check_extension — the cheapest KVM ioctl; measures the call path itself. */
		if (ioctl(kvm, BENCH_KVM_CHECK_EXTENSION, (unsigned long)BENCH_KVM_CAP_GUEST_MEMFD) < 0)
			die("ioctl(KVM_CHECK_EXTENSION)");
	}
	t1 = now_ns();
	samples[W_CHECK_EXTENSION][rep] = t1 - t0;
	ran[W_FALLOCATE_4K] = ran[W_CHECK_EXTENSION] = 1;
}

int main(int argc, char **argv)
{
	int reps = argc > 1 ? atoi(argv[1]) : 5;
	const char *set = argc > 2 ? argv[2] : "all";
	int all = !strcmp(set, "all"), bulk = all || !strcmp(set, "bulk"), small = all || !strcmp(set, "small");
	if (reps < 1 || reps > MAX_REPS || !(bulk || small)) {
		fprintf(stderr, "usage: %s [reps 1..%d [all|bulk|small]]\n", argv[0], MAX_REPS);
		return 2;
	}
	/* Why: the system fd, the entry point of the KVM API. */
	int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm < 0)
		die("open(/dev/kvm)");
	for (int r = 0; r < reps; r++)
		one_rep(kvm, r, bulk, small);
	/* Why: release the system fd (VMs are gone already). */
	close(kvm);

	printf("{\"driver\":\"c\",\"reps\":%d,\"set\":\"%s\",\"workloads\":{", reps, set);
	for (int w = 0, first = 1; w < W_COUNT; w++) {
		if (!ran[w])
			continue;
		double m = median(samples[w], reps);
		printf("%s\"%s\":{\"ops\":%ld,\"samples_ns\":[", first ? "" : ",", names[w], ops[w]);
		first = 0;
		for (int r = 0; r < reps; r++)
			printf("%s%.0f", r ? "," : "", samples[w][r]);
		printf("],\"median_ns\":%.0f,\"per_op_ns\":%.3f}", m, m / (double)ops[w]);
	}
	printf("}}\n");
	return 0;
}

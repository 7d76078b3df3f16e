/**
 * A real guest on the real /dev/kvm, reading and writing guest_memfd memory.
 *
 *  1. create a VM and two guest_memfd files (MMAP | INIT_SHARED): one page of code, one of data;
 *  2. bind both with KVM_SET_USER_MEMORY_REGION2 + KVM_MEM_GUEST_MEMFD, `userspace_addr` = each
 *     file's own mapping (on a PVM host that is the only way the guest sees the file, README);
 *  3. the host writes a message into the data page; the guest (56 bytes of 16-bit real-mode code)
 *     reads it, writes an upper-cased copy back into the same page and reports a checksum and the
 *     length through I/O ports, then halts;
 *  4. the host punches a hole in the data page and runs the guest again: it now reads zeros.
 */
import { GuestMemError } from '@guestmem/core';
import {
  FALLOC_FL_KEEP_SIZE,
  FALLOC_FL_PUNCH_HOLE,
  GUEST_MEMFD_FLAG_INIT_SHARED,
  GUEST_MEMFD_FLAG_MMAP,
  KVM_MEM_GUEST_MEMFD,
  MAP_SHARED,
  PROT_READ,
  PROT_WRITE,
  asNativeVm,
  enterRealMode,
  openKvm,
  runVcpu,
  type KvmGuestMemfd,
  type KvmMapping,
  type NativeVcpu,
  type VcpuExit,
} from '@guestmem/kvm';

const PAGE = 4096;
/** Where the guest's code and its data page sit in guest-physical memory (real mode: below 1 MiB). */
export const CODE_GPA = 0x1000;
export const DATA_GPA = 0x10000;
/** The message: length byte at +0, text at +1. The guest's answer: upper-cased text at +0x100. */
export const ANSWER_OFFSET = 0x100;
/** I/O ports the guest reports on. */
export const PORT_SUM = 0x10;
export const PORT_LENGTH = 0x11;
export const PORT_FIRST_WORD = 0x12;

/**
 * The guest, hand-assembled 16-bit real mode, loaded at 0000:1000 (cross-checked against GNU as):
 * ```
 * 00 b8 00 10     mov ax, 0x1000          ; DS = ES = 0x1000 → data page at GPA 0x10000
 * 03 8e d8        mov ds, ax
 * 05 8e c0        mov es, ax
 * 07 a1 00 00     mov ax, [0]             ; the first word of the page, as the guest sees it
 * 0a e7 12        out 0x12, ax
 * 0c 31 c9        xor cx, cx
 * 0e 8a 0e 00 00  mov cl, [0]             ; length
 * 12 31 db        xor bx, bx              ; checksum
 * 14 be 01 00     mov si, 1               ; message
 * 17 bf 00 01     mov di, 0x100           ; answer
 * 1a e3 12        jcxz done
 * 1c ac       l:  lodsb
 * 1d 30 e4        xor ah, ah
 * 1f 01 c3        add bx, ax              ; checksum += byte
 * 21 3c 61        cmp al, 'a'
 * 23 72 06        jb store
 * 25 3c 7a        cmp al, 'z'
 * 27 77 02        ja store
 * 29 2c 20        sub al, 0x20            ; upper-case
 * 2b aa   store:  stosb
 * 2c e2 ee        loop l
 * 2e 89 d8  done: mov ax, bx
 * 30 e7 10        out 0x10, ax            ; checksum
 * 32 a0 00 00     mov al, [0]
 * 35 e6 11        out 0x11, al            ; length
 * 37 f4           hlt
 * ```
 */
export const GUEST_CODE = Uint8Array.from([
  0xb8, 0x00, 0x10, 0x8e, 0xd8, 0x8e, 0xc0, 0xa1, 0x00, 0x00, 0xe7, 0x12, 0x31, 0xc9, 0x8a, 0x0e, 0x00, 0x00, 0x31, 0xdb, 0xbe, 0x01, 0x00,
  0xbf, 0x00, 0x01, 0xe3, 0x12, 0xac, 0x30, 0xe4, 0x01, 0xc3, 0x3c, 0x61, 0x72, 0x06, 0x3c, 0x7a, 0x77, 0x02, 0x2c, 0x20, 0xaa, 0xe2, 0xee,
  0x89, 0xd8, 0xe7, 0x10, 0xa0, 0x00, 0x00, 0xe6, 0x11, 0xf4,
]);

/** What one run of the guest reported. */
export interface GuestReport {
  /** The first 16-bit word of the data page as the guest read it. */
  firstWord: number;
  /** The 16-bit sum of the message bytes the guest read. */
  checksum: number;
  /** The length byte the guest read. */
  length: number;
  /** KVM_RUN calls and their exits, in order. */
  exits: string[];
  /** Wall time of the KVM_RUN calls (every instruction is emulated on a PVM host). */
  ms: number;
}

export interface RealGuestResult {
  message: string;
  first: GuestReport;
  /** The upper-cased text the guest wrote into the guest_memfd, read back by the host. */
  answer: string;
  afterPunch: GuestReport;
  /** The host's view of the answer area after the punch-hole. */
  answerAfterPunch: string;
}

/** One run from the entry point: at most 8 KVM_RUNs (the guest needs 4 exits) of at most 10 s each. */
function runOnce(vcpu: NativeVcpu): GuestReport {
  enterRealMode(vcpu, 0, CODE_GPA);
  const t0 = performance.now();
  const { exits, exhausted, last } = runVcpu(vcpu, { maxRuns: 8, timeoutMs: 10_000 });
  const ms = performance.now() - t0;
  if (exhausted || last.reasonName !== 'KVM_EXIT_HLT') {
    throw new Error(`the guest did not halt: ${exits.map(describeExit).join(', ')}`);
  }
  const port = (p: number): number => {
    const io = exits.find((e) => e.io?.port === p)?.io;
    if (!io) throw new Error(`no write to port ${p.toString(16)}`);
    return io.size === 2 ? io.data[0]! | (io.data[1]! << 8) : io.data[0]!;
  };
  return { firstWord: port(PORT_FIRST_WORD), checksum: port(PORT_SUM), length: port(PORT_LENGTH), exits: exits.map(describeExit), ms };
}

function describeExit(e: VcpuExit): string {
  if (e.io)
    return `${e.reasonName} ${e.io.direction} port 0x${e.io.port.toString(16)} = 0x${Buffer.from(e.io.data).reverse().toString('hex')}`;
  if (e.mmio) return `${e.reasonName} ${e.mmio.isWrite ? 'write' : 'read'} gpa 0x${e.mmio.physAddr.toString(16)}`;
  return e.reasonName;
}

const text = (bytes: Uint8Array): string => Buffer.from(bytes).toString('latin1');

/** Runs the example on the native driver and prints each step through `log`. */
export function runRealGuest(
  log: (line: string) => void = console.log,
  message = 'hello from the host, via guest_memfd!',
): RealGuestResult {
  if (message.length > 255) throw new RangeError('the message length must fit in one byte');
  const kvm = openKvm({ driver: 'native' });
  const vm = asNativeVm(kvm.createVm());
  const files: KvmGuestMemfd[] = [];
  const maps: KvmMapping[] = [];
  let vcpu: NativeVcpu | undefined;
  try {
    // 1-2. Two guest_memfd files, each bound at its GPA with userspace_addr = its own mapping.
    const bind = (slot: number, gpa: number): KvmMapping => {
      const f = vm.createGuestMemfd({ size: PAGE, flags: GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED });
      files.push(f);
      const m = f.mmap({ length: PAGE, prot: PROT_READ | PROT_WRITE, flags: MAP_SHARED, offset: 0 });
      maps.push(m);
      vm.setUserMemoryRegion2({
        slot,
        flags: KVM_MEM_GUEST_MEMFD,
        guestPhysAddr: gpa,
        memorySize: PAGE,
        userspace: { mapping: m },
        guestMemfd: f.fd,
        guestMemfdOffset: 0,
      });
      log(
        `slot ${slot}: guest_memfd fd ${f.fd} (MMAP|INIT_SHARED) at GPA 0x${gpa.toString(16)}, userspace_addr = its mapping 0x${m.address.toString(16)}`,
      );
      return m;
    };
    const code = bind(0, CODE_GPA);
    const data = bind(1, DATA_GPA);
    code.write(0, GUEST_CODE);
    log(`loaded ${GUEST_CODE.length} bytes of real-mode code at GPA 0x${CODE_GPA.toString(16)}`);

    // 3. The host's message; the guest answers in the same page.
    const msg = Buffer.from(message, 'latin1');
    data.write(0, Uint8Array.of(msg.length));
    data.write(1, msg);
    log(`host wrote ${msg.length} bytes at guest_memfd offset 1: "${message}"`);
    vcpu = vm.createVcpu(0);
    const first = runOnce(vcpu);
    for (const e of first.exits) log(`  exit: ${e}`);
    const answer = text(data.read(ANSWER_OFFSET, msg.length));
    const expectedSum = msg.reduce((s, b) => (s + b) & 0xffff, 0);
    log(
      `guest read length ${first.length}, checksum 0x${first.checksum.toString(16)} (host computes 0x${expectedSum.toString(16)}), in ${first.ms.toFixed(2)} ms`,
    );
    log(`guest wrote back at offset 0x${ANSWER_OFFSET.toString(16)}: "${answer}"`);

    // 4. Punch a hole in the data page: the host and the guest both see zeros afterwards.
    files[1]!.fallocate(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, PAGE);
    const answerAfterPunch = text(data.read(ANSWER_OFFSET, msg.length));
    const hex = Buffer.from(data.read(0, 8))
      .toString('hex')
      .replace(/(..)(?!$)/g, '$1 ');
    log(`punch-hole [0, ${PAGE}) of the data guest_memfd; the host now reads ${hex} …`);
    const afterPunch = runOnce(vcpu);
    log(
      `guest ran again: first word 0x${afterPunch.firstWord.toString(16).padStart(4, '0')}, length ${afterPunch.length}, ` +
        `checksum 0x${afterPunch.checksum.toString(16)}: it read zeros`,
    );
    return { message, first, answer, afterPunch, answerAfterPunch };
  } catch (e) {
    if (GuestMemError.is(e)) log(`failed: ${e.message}`);
    throw e;
  } finally {
    for (const m of maps) m.munmap();
    for (const f of files) f.close();
    vcpu?.close(); // a vCPU fd outlives the VM fd (it holds a VM reference): close it on its own
    vm.close();
    kvm.close();
  }
}

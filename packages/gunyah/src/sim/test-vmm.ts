/**
 * Test-only: a byte-level VMM over the raw ioctls, shaped like Qualcomm's test VMM
 * (`quic/gunyah-test-vmm`, `vmm/tests/holding_cell/mod.rs`), and a model of its "holding cell"
 * guest, which takes commands through an MMIO port at 0x6000. Not exported from the package.
 */
import { expect } from 'vitest';
import {
  GUNYAH_FN,
  GUNYAH_IOCTL,
  GUNYAH_VCPU_EXIT,
  GUNYAH_VCPU_RESUME,
  SIZEOF_FN_VCPU_ARG,
  VCPU_RUN,
  decodeVcpuRunMmio,
  encodeFnDesc,
  encodeFnVcpuArg,
  setMmioResume,
} from '../uapi/index.js';
import type { SimDevice } from './device.js';
import type { GuestOp, GuestOpResult, GuestProgram } from './vcpu.js';
import { le64, u64le } from './test-helpers.js';

/** The holding cell's command port and error port (mod.rs: `0x6000`, `test_errors` at `0x7000`). */
export const CMD_PORT = 0x6000n;
export const ERR_PORT = 0x7000n;

/** `struct Command` of mod.rs: command in bits 0-7, nargs in bits 8-11, hold in bit 16. */
export const command = (cmd: number, nargs: number): Uint8Array => u64le(BigInt(cmd) | (BigInt(nargs) << 8n));

/**
 * The holding-cell guest: read a command word and its arguments from the command port (MMIO
 * reads), run it, write the result to the command port (MMIO write). Commands modelled: 0 ok → 0,
 * 1 nok → u64 max, 2 read_addr, 3 write_addr, 4 loopback, 6 smccc (PSCI SYSTEM_OFF 0x8400_0008
 * powers the VM off), 8 read_io. A synchronous abort is reported as ESR then FAR writes to the error port.
 */
export function* holdingCellGuest(): GuestProgram {
  const io = function* (op: GuestOp): Generator<GuestOp, GuestOpResult, GuestOpResult> {
    return yield op;
  };
  for (;;) {
    const c = yield* io({ kind: 'read', gpa: CMD_PORT, len: 8 });
    if (!c.ok) return;
    const word = le64(c.data!);
    const nargs = Number((word >> 8n) & 0xfn);
    const args: bigint[] = [];
    for (let i = 0; i < nargs; i++) {
      const a = yield* io({ kind: 'read', gpa: CMD_PORT, len: 8 });
      args.push(a.ok ? le64(a.data!) : 0n);
    }
    let result = 0n;
    let abortAt: bigint | undefined;
    switch (Number(word & 0xffn)) {
      case 0:
        break;
      case 1:
        result = (1n << 64n) - 1n;
        break;
      case 2:
      case 8: {
        // read_addr (2) and read_io (8): the guest reads 8 bytes at the address.
        const r = yield* io({ kind: 'read', gpa: args[0]!, len: 8 });
        if (r.ok) result = le64(r.data!);
        else abortAt = r.abortAt;
        break;
      }
      case 3: {
        const r = yield* io({ kind: 'write', gpa: args[0]!, data: u64le(args[1]!) });
        if (!r.ok) abortAt = r.abortAt;
        break;
      }
      case 4:
        result = args[0]!;
        break;
      case 6:
        if (args[0] === 0x8400_0008n) {
          yield { kind: 'system-off' };
          return;
        }
        break;
    }
    if (abortAt !== undefined) {
      yield { kind: 'write', gpa: ERR_PORT, data: u64le(0x9600_0000n) }; // an ESR (data abort)
      yield { kind: 'write', gpa: ERR_PORT, data: u64le(abortAt) }; // FAR
      continue;
    }
    yield { kind: 'write', gpa: CMD_PORT, data: u64le(result) };
  }
}

/** The VMM side: a vCPU fd, its mmapped run block, and the test VMM's `run_test` protocol. */
export class TestVmm {
  readonly vcpuFd: number;
  readonly run: Uint8Array;

  constructor(
    readonly gh: SimDevice,
    readonly vmFd: number,
    id = 0,
  ) {
    const arg = this.gh.userMem.put(encodeFnVcpuArg(id));
    this.vcpuFd = gh.ioctl(
      vmFd,
      GUNYAH_IOCTL.GUNYAH_VM_ADD_FUNCTION,
      encodeFnDesc({ type: GUNYAH_FN.VCPU, argSize: SIZEOF_FN_VCPU_ARG, arg }),
    );
    expect(gh.ioctl(this.vcpuFd, GUNYAH_IOCTL.GUNYAH_VCPU_MMAP_SIZE)).toBeGreaterThanOrEqual(VCPU_RUN.SIZE);
    this.run = gh.mmapVcpu(this.vcpuFd);
  }

  /** `run_once`: one GUNYAH_VCPU_RUN; the exit reason it left. */
  runOnce(): number {
    expect(this.gh.ioctl(this.vcpuFd, GUNYAH_IOCTL.GUNYAH_VCPU_RUN)).toBe(0);
    return new DataView(this.run.buffer).getUint32(VCPU_RUN.exitReason, true);
  }

  /** `vmmio_provide_read`: the exit must be an MMIO read of `data.length` bytes at `addr`. */
  provideRead(addr: bigint, data: Uint8Array): void {
    const m = decodeVcpuRunMmio(this.run);
    expect(m).toMatchObject({ isWrite: 0, physAddr: addr, len: data.length });
    setMmioResume(this.run, GUNYAH_VCPU_RESUME.HANDLED, data);
  }

  /**
   * `read_io`: command 8 with one argument; the guest's read of `addr` must exit as an MMIO read
   * there, which the VMM serves with `value`; the guest returns what it read.
   */
  readIo(addr: bigint, value: bigint): bigint {
    this.gh.ioctl(this.vmFd, GUNYAH_IOCTL.GUNYAH_VM_START);
    expect(this.runOnce()).toBe(GUNYAH_VCPU_EXIT.MMIO);
    this.provideRead(CMD_PORT, command(8, 1));
    expect(this.runOnce()).toBe(GUNYAH_VCPU_EXIT.MMIO);
    this.provideRead(CMD_PORT, u64le(addr));
    expect(this.runOnce()).toBe(GUNYAH_VCPU_EXIT.MMIO);
    this.provideRead(addr, u64le(value));
    expect(this.runOnce()).toBe(GUNYAH_VCPU_EXIT.MMIO);
    const m = decodeVcpuRunMmio(this.run);
    expect(m).toMatchObject({ physAddr: CMD_PORT, isWrite: 1, len: 8 });
    return le64(m.data);
  }

  /** `run_immediately`: start, send the command and its arguments, return the result word. */
  runImmediately(cmd: number, args: bigint[]): bigint {
    this.gh.ioctl(this.vmFd, GUNYAH_IOCTL.GUNYAH_VM_START);
    expect(this.runOnce()).toBe(GUNYAH_VCPU_EXIT.MMIO);
    this.provideRead(CMD_PORT, command(cmd, args.length));
    for (const a of args) {
      expect(this.runOnce()).toBe(GUNYAH_VCPU_EXIT.MMIO);
      this.provideRead(CMD_PORT, u64le(a));
    }
    expect(this.runOnce()).toBe(GUNYAH_VCPU_EXIT.MMIO);
    const m = decodeVcpuRunMmio(this.run);
    if (m.physAddr === ERR_PORT) throw new Error(`holding cell got a sync abort (ESR ${le64(m.data).toString(16)})`);
    expect(m).toMatchObject({ physAddr: CMD_PORT, isWrite: 1, len: 8 });
    return le64(m.data);
  }
}

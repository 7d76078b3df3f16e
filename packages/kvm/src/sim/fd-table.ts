/**
 * A simulated process fd table: what REGION2's `guest_memfd` field is resolved against (`fget`), so
 * a closed fd gives EBADF and a live fd of the wrong kind gives EINVAL, exactly as on the kernel.
 */

/** What an fd refers to. `stdio` stands for the 0/1/2 every process starts with. */
export type SimFdKind = 'stdio' | 'kvm' | 'vm' | 'vcpu' | 'gmem' | 'memfd' | 'devnull';

export interface SimFdEntry {
  readonly kind: SimFdKind;
  /** The open file object (`struct file`): shared by every fd `dup` made from the same one. */
  readonly file: object;
}

export class SimFdTable {
  private readonly entries: Array<SimFdEntry | undefined>;

  constructor() {
    const stdio: SimFdEntry = { kind: 'stdio', file: {} };
    this.entries = [stdio, stdio, stdio];
  }

  /** Installs `entry` at the lowest free fd number (`get_unused_fd_flags`), which it returns. */
  install(entry: SimFdEntry): number {
    let fd = this.entries.indexOf(undefined);
    if (fd < 0) fd = this.entries.length;
    this.entries[fd] = entry;
    return fd;
  }

  /** `fget`: the entry of a u32 fd number, or undefined when the number is not open. */
  get(fd: number): SimFdEntry | undefined {
    return Number.isInteger(fd) && fd >= 0 ? this.entries[fd] : undefined;
  }

  /** Frees `fd` (close). */
  remove(fd: number): void {
    this.entries[fd] = undefined;
    while (this.entries.length > 3 && this.entries[this.entries.length - 1] === undefined) this.entries.pop();
  }

  /** Open fd numbers, ascending. */
  list(): number[] {
    const out: number[] = [];
    this.entries.forEach((e, fd) => e && out.push(fd));
    return out;
  }
}

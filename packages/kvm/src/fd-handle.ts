import { GuestMemError } from '@guestmem/core';

/**
 * What every fd handle of both drivers shares, so they behave identically (the differential suite
 * depends on it): the handle closes its fd exactly once, and afterwards every call — a second
 * `close()` included — throws `EBADF` without touching the fd number, which the process may
 * already have reused for something else.
 */
export abstract class FdHandle {
  #closed = false;

  protected constructor(
    readonly fd: number,
    private readonly backendId: string,
  ) {}

  get closed(): boolean {
    return this.#closed;
  }

  /** Returns the fd, or throws `EBADF` if this handle was closed. */
  protected live(op: string, syscall: string): number {
    if (this.#closed) {
      throw new GuestMemError({
        code: 'EBADF',
        op,
        backend: this.backendId,
        syscall,
        detail: `fd ${this.fd} was already closed through this handle`,
        info: { fd: this.fd },
      });
    }
    return this.fd;
  }

  close(): void {
    const fd = this.live('close', 'close');
    this.#closed = true;
    this.release(fd);
  }

  /** Drops what the fd held (the real `close(2)`, or the simulated fd-table entry). Runs once. */
  protected abstract release(fd: number): void;
}

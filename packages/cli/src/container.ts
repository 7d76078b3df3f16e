import 'reflect-metadata';
import { registerCore, type RegisterCoreOptions } from '@guestmem/core';
import { registerGunyah, registerGunyahAck } from '@guestmem/gunyah';
import { registerKvm } from '@guestmem/kvm';
import { container as root, type DependencyContainer } from 'tsyringe';

/** A container with core and every backend this repository ships registered. */
export function makeContainer(opts: RegisterCoreOptions = {}): DependencyContainer {
  const c = root.createChildContainer();
  registerCore(c, opts);
  registerKvm(c, { driver: 'auto' });
  registerGunyah(c);
  registerGunyahAck(c);
  return c;
}

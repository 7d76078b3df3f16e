import { describe } from 'vitest';
import { defineGuestMemfdSelftests } from '../selftests/guest-memfd.js';
import { openSimKvm } from './index.js';

describe('simulated kernel (6.18): ported guest_memfd selftests', () => {
  defineGuestMemfdSelftests(() => openSimKvm({ profile: '6.18' }));
});

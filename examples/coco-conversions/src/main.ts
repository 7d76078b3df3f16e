#!/usr/bin/env node
import { runCocoDemo } from './demo.js';

runCocoDemo();

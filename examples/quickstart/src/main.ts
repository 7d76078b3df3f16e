#!/usr/bin/env node
import { runQuickstart } from './quickstart.js';

runQuickstart();

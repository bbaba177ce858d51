#!/usr/bin/env node
// `hotplex`: the operator's command line for a hotplex daemon (see `hotplex --help`).
import { nodeIo } from "./hotplex/io.js";
import { run } from "./hotplex/run.js";

process.exitCode = await run(process.argv.slice(2), nodeIo());

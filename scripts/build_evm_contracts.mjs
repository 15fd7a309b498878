#!/usr/bin/env node
// Build the Chenilles EVM contracts with the pinned solc-js (package.json).
//
//   node scripts/build_evm_contracts.mjs           write contracts/evm/build/<Contract>.json
//   node scripts/build_evm_contracts.mjs --check   recompile, exit 1 if the artifacts differ
//
// Reproducible: sources are read in sorted order under fixed unit names
// ("contracts/evm/X.sol"), the settings are pinned below, and the JSON is written
// with sorted keys where order is ours to choose. Each artifact records the exact
// compiler version and settings, plus the sha256 of every source it was built from.
import { createHash } from "node:crypto";
import { readdirSync, readFileSync, writeFileSync, mkdirSync, existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const solc = require("solc");

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const SRC_DIR = "contracts/evm";
const OUT_DIR = join(SRC_DIR, "build");
const SETTINGS = {
  evmVersion: "cancun",
  optimizer: { enabled: true, runs: 200 },
  metadata: { bytecodeHash: "ipfs" },
  outputSelection: {
    "*": { "*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"] },
  },
};

const check = process.argv.includes("--check");

function sha256(text) {
  return createHash("sha256").update(text, "utf8").digest("hex");
}

const files = readdirSync(join(ROOT, SRC_DIR)).filter((f) => f.endsWith(".sol")).sort();
const sources = {};
for (const f of files) {
  sources[`${SRC_DIR}/${f}`] = { content: readFileSync(join(ROOT, SRC_DIR, f), "utf8") };
}

const input = { language: "Solidity", sources, settings: SETTINGS };
const output = JSON.parse(
  solc.compile(JSON.stringify(input), {
    import: (path) => {
      const p = join(ROOT, path);
      return existsSync(p) ? { contents: readFileSync(p, "utf8") } : { error: `not found: ${path}` };
    },
  }),
);

let failed = false;
for (const e of output.errors || []) {
  const msg = e.formattedMessage || e.message;
  if (e.severity === "error") {
    failed = true;
    console.error(msg);
  } else {
    console.error(msg);
  }
}
if (failed) process.exit(2);

const version = solc.version();
const artifacts = {};
for (const unit of Object.keys(output.contracts).sort()) {
  for (const name of Object.keys(output.contracts[unit]).sort()) {
    const c = output.contracts[unit][name];
    const art = {
      contractName: name,
      sourceName: unit,
      compiler: { name: "solc-js", version },
      settings: { evmVersion: SETTINGS.evmVersion, optimizer: SETTINGS.optimizer },
      sourcesSha256: Object.fromEntries(Object.keys(sources).map((k) => [k, sha256(sources[k].content)])),
      abi: c.abi,
      bytecode: "0x" + c.evm.bytecode.object,
      deployedBytecode: "0x" + c.evm.deployedBytecode.object,
    };
    if (artifacts[name]) {
      console.error(`duplicate contract name ${name}`);
      process.exit(2);
    }
    artifacts[name] = JSON.stringify(art, null, 2) + "\n";
  }
}

const outAbs = join(ROOT, OUT_DIR);
if (check) {
  const existing = existsSync(outAbs) ? readdirSync(outAbs).filter((f) => f.endsWith(".json")).sort() : [];
  const wanted = Object.keys(artifacts).map((n) => `${n}.json`).sort();
  let differ = false;
  for (const f of new Set([...existing, ...wanted])) {
    const name = f.slice(0, -5);
    const onDisk = existing.includes(f) ? readFileSync(join(outAbs, f), "utf8") : null;
    if (onDisk !== (artifacts[name] ?? null)) {
      differ = true;
      console.error(`artifact differs: ${OUT_DIR}/${f}`);
    }
  }
  if (differ) {
    console.error("EVM artifacts are stale: run `node scripts/build_evm_contracts.mjs`");
    process.exit(1);
  }
  console.log(`EVM artifacts up to date (${wanted.length} contracts, solc ${version})`);
} else {
  mkdirSync(outAbs, { recursive: true });
  for (const [name, text] of Object.entries(artifacts)) writeFileSync(join(outAbs, `${name}.json`), text);
  console.log(`wrote ${Object.keys(artifacts).length} artifacts to ${OUT_DIR} (solc ${version})`);
}

#!/usr/bin/env node
// Build the Chenilles EVM contracts with the pinned solc-js (package.json).
//
//   node scripts/build_evm_contracts.mjs           write contracts/evm/build/<Contract>.json
//   node scripts/build_evm_contracts.mjs --check   recompile, exit 1 if the artifacts differ
//
// Apps (apps/<name>/, each its own distribution) are built the same way, each in its own
// compilation: apps/<name>/contracts/evm/*.sol -> apps/<name>/<package>/build/<Contract>.json,
// where <package> is the app's one Python package directory (the artifacts ship inside
// it). An app imports the adjudicator's types as "contracts/evm/Adjudicator.sol"; only the
// app's own contracts are written. App bytecode carries no source-metadata hash
// (bytecodeHash "none"), so it changes only when the compiled code does, not when a
// comment in the adjudicator does.
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

function compile(srcDir, settings, label) {
  const files = readdirSync(join(ROOT, srcDir)).filter((f) => f.endsWith(".sol")).sort();
  const sources = {};
  for (const f of files) {
    sources[`${srcDir}/${f}`] = { content: readFileSync(join(ROOT, srcDir, f), "utf8") };
  }

  const input = { language: "Solidity", sources, settings };
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

  const artifacts = {};
  for (const unit of Object.keys(output.contracts).sort()) {
    if (!sources[unit]) continue; // an imported unit (the adjudicator's types for an app)
    for (const name of Object.keys(output.contracts[unit]).sort()) {
      const c = output.contracts[unit][name];
      const art = {
        contractName: name,
        sourceName: unit,
        compiler: { name: "solc-js", version },
        settings: { evmVersion: settings.evmVersion, optimizer: settings.optimizer },
        sourcesSha256: Object.fromEntries(Object.keys(sources).map((k) => [k, sha256(sources[k].content)])),
        abi: c.abi,
        bytecode: "0x" + c.evm.bytecode.object,
        deployedBytecode: "0x" + c.evm.deployedBytecode.object,
      };
      if (artifacts[name]) {
        console.error(`duplicate contract name ${name} in ${label}`);
        process.exit(2);
      }
      artifacts[name] = JSON.stringify(art, null, 2) + "\n";
    }
  }
  return artifacts;
}

const version = solc.version();
let stale = false;

function emit(outDir, artifacts) {
  const outAbs = join(ROOT, outDir);
  if (check) {
    // contract artifacts only (an app's build directory also holds the Solana build info)
    const isArtifact = (f) => f.endsWith(".json") && "contractName" in JSON.parse(readFileSync(join(outAbs, f), "utf8"));
    const existing = existsSync(outAbs) ? readdirSync(outAbs).filter(isArtifact).sort() : [];
    const wanted = Object.keys(artifacts).map((n) => `${n}.json`).sort();
    for (const f of new Set([...existing, ...wanted])) {
      const name = f.slice(0, -5);
      const onDisk = existing.includes(f) ? readFileSync(join(outAbs, f), "utf8") : null;
      if (onDisk !== (artifacts[name] ?? null)) {
        stale = true;
        console.error(`artifact differs: ${outDir}/${f}`);
      }
    }
    console.log(`${outDir}: ${wanted.length} contracts checked (solc ${version})`);
  } else {
    mkdirSync(outAbs, { recursive: true });
    for (const [name, text] of Object.entries(artifacts)) writeFileSync(join(outAbs, `${name}.json`), text);
    console.log(`wrote ${Object.keys(artifacts).length} artifacts to ${outDir} (solc ${version})`);
  }
}

emit(OUT_DIR, compile(SRC_DIR, SETTINGS, "the adjudicator"));

const APP_SETTINGS = { ...SETTINGS, metadata: { bytecodeHash: "none" } };
const appsDir = join(ROOT, "apps");
const apps = existsSync(appsDir) ? readdirSync(appsDir).sort() : [];
for (const app of apps) {
  const src = `apps/${app}/contracts/evm`;
  if (!existsSync(join(ROOT, src))) continue;
  const packages = readdirSync(join(ROOT, "apps", app)).filter((d) =>
    existsSync(join(ROOT, "apps", app, d, "__init__.py")),
  );
  if (packages.length !== 1) {
    console.error(`apps/${app}: expected exactly one Python package beside contracts/, found ${packages}`);
    process.exit(2);
  }
  emit(`apps/${app}/${packages[0]}/build`, compile(src, APP_SETTINGS, `app ${app}`));
}

if (stale) {
  console.error("EVM artifacts are stale: run `node scripts/build_evm_contracts.mjs`");
  process.exit(1);
}

/** An unhandled rejection cannot kill the process: proven in a child process running the guard. */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import path from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath, pathToFileURL } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));

describe("process guards", () => {
  it("log an unhandled rejection and keep the process running", () => {
    const guards = pathToFileURL(path.join(here, "..", "src", "guards.js")).href;
    const log = pathToFileURL(path.join(here, "..", "src", "log.js")).href;
    const script = `
      const { installProcessGuards } = await import(${JSON.stringify(guards)});
      const { createLogger } = await import(${JSON.stringify(log)});
      installProcessGuards(createLogger("info"));
      Promise.reject(new Error("nobody awaits this"));
      setTimeout(() => { console.log(JSON.stringify({ event: "still alive" })); }, 200);
    `;
    const child = spawnSync(process.execPath, ["--input-type=module", "-e", script], { encoding: "utf8", timeout: 10_000 });
    assert.equal(child.status, 0, child.stderr);
    assert.match(child.stdout, /unhandled rejection/);
    assert.match(child.stdout, /still alive/);

    // Without the guard, Node ends the process: the test above would fail without it.
    const bare = spawnSync(process.execPath, ["--input-type=module", "-e", 'Promise.reject(new Error("x")); setTimeout(() => console.log("still alive"), 200);'], {
      encoding: "utf8",
      timeout: 10_000,
    });
    assert.notEqual(bare.status, 0);
    assert.doesNotMatch(bare.stdout, /still alive/);
  });
});

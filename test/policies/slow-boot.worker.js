// The evaluator's worker after a slow boot (600 ms of busy start-up, as on a loaded machine): the time
// limit of an evaluation must not count it.
"use strict";
const until = Date.now() + 600;
while (Date.now() < until) {
  // busy, like a cold process loading its modules
}
require(require("node:path").join(__dirname, "../../services/policies/evaluator.worker.js"));

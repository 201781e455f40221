/** Jest runs TypeScript through SWC (no type-check); `npm run lint` type-checks separately. */
module.exports = {
  testEnvironment: "node",
  roots: ["<rootDir>/test"],
  testMatch: ["**/*.spec.ts"],
  transform: {
    "^.+\\.ts$": ["@swc/jest", { jsc: { parser: { syntax: "typescript" }, target: "es2022" }, module: { type: "commonjs" } }],
  },
  testTimeout: 30000,
  // Brokers stopped in afterAll can leave NATS/Redis sockets closing for a moment; do not wait on them.
  forceExit: true,
  reporters: ["default", "<rootDir>/test/helpers/plain-summary.js"],
};

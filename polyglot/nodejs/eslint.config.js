// Lint rules: typescript-eslint's strict, type-aware set. Each rule turned off says why.
import js from "@eslint/js";
import tseslint from "typescript-eslint";

export default tseslint.config(
  { ignores: ["dist/", "build-test/", "node_modules/", "eslint.config.js"] },
  js.configs.recommended,
  ...tseslint.configs.strictTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      // Template literals with numbers are how this code writes headers and messages.
      "@typescript-eslint/restrict-template-expressions": ["error", { allowNumber: true }],
      // Fire-and-forget background work is marked with `void` on purpose.
      "@typescript-eslint/no-confusing-void-expression": "off",
      // A hook's parameters are named for its overriders even when the default ignores them.
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_" }],
    },
  },
  {
    files: ["test/**/*.ts"],
    rules: {
      // node:test's describe/it return promises the runner awaits itself.
      "@typescript-eslint/no-floating-promises": "off",
      // Tests reach into JSON bodies whose shape the assertions check.
      "@typescript-eslint/no-unsafe-member-access": "off",
      "@typescript-eslint/no-unsafe-assignment": "off",
      "@typescript-eslint/no-non-null-assertion": "off",
    },
  },
);

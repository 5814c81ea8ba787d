// ESLint (v9, flat config) for the site's classic scripts and their Node unit tests; run by
// `make jslint` (part of `make test`) from the pinned copy in .cache/npm. No plugins and no
// shared configs, so nothing but eslint itself is needed: the rules are listed here.

// What a browser page gives the scripts (only what they use: a new global must be added on purpose).
const browser = {
  window: "readonly",
  document: "readonly",
  IntersectionObserver: "readonly",
  setTimeout: "readonly",
  clearTimeout: "readonly",
};
// The scripts also load in Node for the unit tests (module.exports; require of common.js).
const commonjs = { module: "readonly", require: "readonly" };

const rules = {
  "no-undef": "error",
  "no-unused-vars": ["error", { args: "none" }],
  "no-redeclare": "error",
  "no-shadow": ["error", { builtinGlobals: false }],
  "no-use-before-define": ["error", { functions: false, variables: true }],
  "no-implicit-globals": "error",
  "no-global-assign": "error",
  "no-dupe-keys": "error",
  "no-dupe-args": "error",
  "no-duplicate-case": "error",
  "no-unreachable": "error",
  "no-fallthrough": "error",
  "no-self-compare": "error",
  "no-unsafe-negation": "error",
  "use-isnan": "error",
  "valid-typeof": "error",
  eqeqeq: "error",
  "no-eval": "error",
  "no-implied-eval": "error",
  "no-new-func": "error",
  "no-var": "off", // classic ES5-style scripts: var is their idiom
  strict: ["error", "function"],
  // Readable at a glance: lines up to 120 characters (long texts and URLs may run on) and
  // functions up to 60 lines of code (a page script's outer closure is its module, not a
  // function: the cap is for the functions inside it; site/static caps the file, below).
  "max-len": ["error", {
    code: 120, ignoreStrings: true, ignoreTemplateLiterals: true, ignoreUrls: true, ignoreRegExpLiterals: true,
  }],
  "max-lines-per-function": ["error", { max: 60, skipBlankLines: true, skipComments: true, IIFEs: false }],
};

module.exports = [
  {
    files: ["site/static/**/*.js"],
    languageOptions: {
      ecmaVersion: 2019,
      sourceType: "script",
      globals: { ...browser, ...commonjs, ModelAtlas: "readonly" },
    },
    rules: {
      ...rules,
      // A page script is one closure (the file), which the function cap leaves out: this caps it.
      "max-lines": ["error", { max: 200, skipBlankLines: true, skipComments: true }],
    },
  },
  {
    // common.js defines ModelAtlas: the one global the site's scripts add.
    files: ["site/static/common.js"],
    languageOptions: { globals: { ModelAtlas: "off" } },
    rules: { "no-implicit-globals": "off" },
  },
  {
    files: ["tests/js/**/*.js", "eslint.config.cjs"],
    languageOptions: {
      ecmaVersion: 2022,
      sourceType: "commonjs",
      globals: { ...commonjs, __dirname: "readonly", global: "readonly", console: "readonly" },
    },
    rules: { ...rules, strict: "off", "no-implicit-globals": "off" },
  },
];

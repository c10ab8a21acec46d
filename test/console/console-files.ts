/** The console's own modules, one concern each (public/console/*.js besides the pages). */
export const SHARED_MODULES = [
  "session.js",
  "http.js",
  "dom.js",
  "money.js",
  "format.js",
  "sse.js",
  "shell.js",
  "pickers.js",
  "taskcard.js",
];

/** One script per page. */
export const PAGE_SCRIPTS = ["tenants.js", "tasks.js", "playground.js", "finance.js", "upstreams.js"];

/** Every console script but the generated one. */
export const CONSOLE_SCRIPTS = [...SHARED_MODULES, ...PAGE_SCRIPTS];

/**
 * The console is static assets of this Worker (public/console/): every page is served,
 * loads scripts and styles from this origin only (no CDN, works offline) and keeps the
 * admin token out of URLs. The Workers pool's SELF skips the asset router, so assets are
 * fetched through the ASSETS binding, which is what serves them in production.
 */
import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { CONSOLE_SCRIPTS, SHARED_MODULES } from "./console-files";

const BASE = "http://gateway.test";
const assets = () => (env as unknown as { ASSETS: Fetcher }).ASSETS;

async function asset(path: string) {
  let response = await assets().fetch(`${BASE}${path}`, { redirect: "manual" });
  // auto-trailing-slash: /console → /console/
  if (response.status >= 300 && response.status < 400) {
    response = await assets().fetch(new URL(response.headers.get("location")!, `${BASE}${path}`));
  }
  return response;
}

const PAGES = {
  "/console/": { script: "/console/tenants.js", title: "Tenants", nav: "tenants" },
  "/console/tasks": { script: "/console/tasks.js", title: "Live tasks", nav: "tasks" },
  "/console/playground": { script: "/console/playground.js", title: "Playground", nav: "playground" },
  "/console/finance": { script: "/console/finance.js", title: "Finance", nav: "finance" },
  "/console/upstreams": { script: "/console/upstreams.js", title: "Upstreams", nav: "upstreams" },
};

/** src/href of every script, stylesheet, image, media or frame a page (or a script) names. */
function referencedUrls(html: string): string[] {
  const tags = /<(script|link|img|iframe|video|audio|source|embed|object)\b[^>]*>/gi;
  const urls: string[] = [];
  for (const tag of html.match(tags) ?? []) {
    for (const m of tag.matchAll(/\b(?:src|href|data)\s*=\s*["']([^"']*)["']/gi)) urls.push(m[1]!);
  }
  return urls;
}

const external = (url: string) => /^(https?:)?\/\//i.test(url);

describe("console pages", () => {
  for (const [path, page] of Object.entries(PAGES)) {
    it(`${path} is served with its own script, which starts the shared shell`, async () => {
      const response = await asset(path);
      expect(response.status).toBe(200);
      expect(response.headers.get("content-type")).toMatch(/^text\/html/);
      const html = await response.text();
      expect(html).toContain(page.title);
      expect(html).toContain(`<body data-page="${page.nav}">`);
      expect(html).toContain('<main id="app" hidden>');
      const urls = referencedUrls(html);
      expect(urls).toContain(page.script);
      expect(urls).toContain("/console/console.css");
      expect(urls.filter(external)).toEqual([]);
      expect(html).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>\s*\S/); // no inline scripts
      expect(html).not.toMatch(/\sstyle=/); // the CSP allows no inline styles
      // The header, nav, toasts and login form are rendered by shell.js's boot().
      const script = await (await asset(page.script)).text();
      expect(script).toMatch(/\bboot,?[\s\S]*from "\.\/shell\.js"/);
      expect(script).toMatch(/^boot\(/m);
    });
  }

  it("the shared shell (shell.js) renders the login form, a password input and the nav to every page", async () => {
    const shell = await (await asset("/console/shell.js")).text();
    expect(shell).toMatch(/function boot\(init\) \{\s*renderShell\(\);/);
    expect(shell).toContain('id: "login-form"');
    expect(shell).toMatch(/id: "login-token", type: "password"/);
    for (const [path, page] of Object.entries(PAGES)) {
      expect(shell).toContain(`["${page.nav}", "${path}", `);
    }
    expect(shell).toContain('href: "/docs"');
  });

  it("the old catch-all lib.js is gone: pages import the module of each concern", async () => {
    expect((await asset("/console/lib.js")).status).toBe(404);
    for (const page of Object.values(PAGES)) {
      expect(await (await asset(page.script)).text()).not.toContain("./lib.js");
    }
  });

  it("every script and stylesheet the pages use is served, and imports only from this origin", async () => {
    const files = ["/console/console.css", ...SHARED_MODULES.map((file) => `/console/${file}`)];
    for (const page of Object.values(PAGES)) files.push(page.script);
    for (const file of files) {
      const response = await asset(file);
      expect(response.status, file).toBe(200);
      const text = await response.text();
      for (const m of text.matchAll(/\bimport\b[^"'`]*["'`]([^"'`]+)["'`]/g)) {
        expect(m[1], `${file} imports ${m[1]}`).toMatch(/^\.\//);
      }
      expect(text, file).not.toMatch(/@import|url\(\s*["']?(https?:)?\/\//);
      expect(text, file).not.toMatch(/cdn\.|jsdelivr|unpkg|googleapis|fonts\.g/);
    }
  });

  it("sends a CSP that allows scripts, styles and API calls from this origin only", async () => {
    const csp = (await asset("/console/")).headers.get("content-security-policy") ?? "";
    const directive = (name: string) =>
      csp
        .split(";")
        .map((d) => d.trim())
        .find((d) => d.startsWith(`${name} `)) ?? "";
    expect(directive("script-src")).toBe("script-src 'self'");
    expect(directive("style-src")).toBe("style-src 'self'");
    expect(directive("connect-src")).toBe("connect-src 'self'");
    expect(directive("default-src")).toBe("default-src 'self'");
    expect(csp).toContain("frame-ancestors 'none'");
  });

  it("never puts the admin token or a key in a URL: no ?token= or key in fetch paths, sessionStorage only", async () => {
    const text = async (file: string) => (await asset(`/console/${file}`)).text();
    expect(await text("session.js")).toContain("sessionStorage");
    expect(await text("http.js")).toMatch(/authorization = `Bearer \$\{credential\}`/);
    for (const file of CONSOLE_SCRIPTS) {
      const script = await text(file);
      expect(script, file).not.toMatch(/[?&](admin_token|api_key|key|authorization)=/i);
      expect(script, file).not.toContain("localStorage");
    }
    // The only token in a URL is the short-lived stream token EventSource needs.
    expect(await text("sse.js")).toContain('url.searchParams.set("token", token)');
  });

  it("the landing page links the console and the API docs", async () => {
    const html = await (await asset("/")).text();
    expect(html).toContain('href="/console/"');
    expect(html).toContain('href="/docs"');
    expect(referencedUrls(html).filter(external)).toEqual([]);
  });
});

/**
 * The one public-URL rule set (src/domain/public-url.ts), shared by webhook endpoints and
 * image inputs. Runs in workerd, so the URL parser is the one the gateway uses.
 */
import { describe, expect, it } from "vitest";
import { PRIVATE_HOST_MESSAGE, publicUrlProblem } from "../../src/domain/public-url";
import { webhookUrlProblem } from "../../src/domain/webhooks";
import { imageRefProblem, imageRefsProblem } from "../../src/routes/v1/generations/schemas";

const input = (url: string) => publicUrlProblem(url, { schemes: ["http:", "https:"], allowLoopback: false });
const devInput = (url: string) =>
  publicUrlProblem(url, { schemes: ["http:", "https:"], allowLoopback: true });

const PUBLIC = [
  "https://example.com/cat.png",
  "http://example.com/cat.png",
  "https://cdn.example.org:8443/a/b.png?x=1#frag",
  "https://EXAMPLE.com/a.png",
  "https://8.8.8.8/a.png",
  "https://172.32.0.1/a.png",
  "https://100.128.0.1/a.png",
  "https://100.63.255.255/a.png",
  "https://192.169.0.1/a.png",
  "https://[2606:4700:4700::1111]/a.png",
  "https://[::ffff:8.8.8.8]/a.png",
  "https://[2002:808:808::1]/a.png",
  "https://example.com./a.png",
  "https://bücher.example/a.png",
];

const NOT_PUBLIC = [
  // loopback
  "http://127.0.0.1/a.png",
  "http://127.255.255.254/a.png",
  "http://localhost/a.png",
  "http://LOCALHOST:8787/a.png",
  "http://img.localhost/a.png",
  "http://localhost./a.png",
  "http://[::1]/a.png",
  "http://[0:0:0:0:0:0:0:1]/a.png",
  // integer, octal and hex spellings of 127.0.0.1 and 10.0.0.1
  "http://2130706433/",
  "http://0x7f.1/",
  "http://0x7f000001/",
  "http://017700000001/",
  "http://0177.0.0.1/",
  "http://127.1/",
  "http://0x0a.0.0.1/",
  "http://167772161/",
  // private
  "http://10.0.0.1/a.png",
  "http://172.16.0.1/a.png",
  "http://172.31.255.255/a.png",
  "http://192.168.1.1/a.png",
  "http://[fc00::1]/a.png",
  "http://[fd12:3456::1]/a.png",
  // link-local and metadata
  "http://169.254.169.254/latest/meta-data/",
  "http://169.254.0.1/",
  "http://[fe80::1]/",
  "http://metadata.google.internal/computeMetadata/v1/",
  "http://metadata.google.internal./computeMetadata/v1/",
  "http://metadata/computeMetadata/v1/",
  "http://192.0.0.192/",
  // CGNAT, this-network, multicast, reserved, broadcast
  "http://100.64.0.1/",
  "http://100.100.100.200/",
  "http://100.127.255.255/",
  "http://0.0.0.0/",
  "http://0.1.2.3/",
  "http://0/",
  "http://224.0.0.1/",
  "http://239.255.255.250/",
  "http://240.0.0.1/",
  "http://255.255.255.255/",
  "http://198.18.0.1/",
  "http://[ff02::1]/",
  "http://[::]/",
  // IPv6 forms that embed a private IPv4
  "http://[::ffff:127.0.0.1]/",
  "http://[::ffff:7f00:1]/",
  "http://[::ffff:10.0.0.1]/",
  "http://[::ffff:169.254.169.254]/",
  "http://[::127.0.0.1]/",
  "http://[64:ff9b::a9fe:a9fe]/",
  "http://[2002:7f00:1::]/",
  "http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/",
  // names without a dot, internal suffixes
  "http://intranet/a.png",
  "http://printer.local/a.png",
  "http://nas.home.arpa/a.png",
  "http://box.localdomain/a.png",
];

describe("publicUrlProblem (image inputs: http or https)", () => {
  it("accepts public http(s) URLs", () => {
    for (const url of PUBLIC) expect(input(url), url).toBeNull();
  });

  it("refuses loopback, private, link-local, CGNAT, multicast, reserved and internal hosts", () => {
    for (const url of NOT_PUBLIC) expect(input(url), url).toBe(PRIVATE_HOST_MESSAGE);
  });

  it("refuses credentials, even an empty userinfo", () => {
    for (const url of [
      "http://user:pass@example.com/a.png",
      "http://user@example.com/a.png",
      "http://:pass@example.com/a.png",
      "http://@example.com/a.png",
      "http://example.com@127.0.0.1/a.png",
    ]) {
      expect(input(url), url).toMatch(/credentials/);
    }
  });

  it("refuses any other scheme and anything that is not an absolute URL", () => {
    for (const url of [
      "ftp://example.com/a.png",
      "file:///etc/passwd",
      "gopher://example.com/",
      "javascript:alert(1)",
      "ws://example.com/",
      "blob:https://example.com/x",
    ]) {
      expect(input(url), url).toBe("must be an http(s) URL");
    }
    for (const url of ["example.com/a.png", "/a.png", "not a url", "http://", ""]) {
      expect(input(url), url).toBe("must be an absolute URL");
    }
  });

  it("refuses what parsers disagree on: backslashes, whitespace, control characters, encoded hosts, odd IPv4", () => {
    expect(input("http://example.com\\@127.0.0.1/")).toMatch(/backslashes/);
    expect(input("https://example.com\\a.png")).toMatch(/backslashes/);
    expect(input("http://exam\tple.com/a.png")).toMatch(/control characters/);
    expect(input("http://example.com/a b.png")).toMatch(/spaces/);
    expect(input(" http://example.com/a.png")).toMatch(/spaces/);
    expect(input("http://%65xample.com/a.png")).toMatch(/percent-encode/);
    // Public addresses in a spelling other than a.b.c.d.
    expect(input("http://134744072/a.png")).toMatch(/four decimal numbers/); // 8.8.8.8
    expect(input("http://0x08.0x08.0x08.0x08/")).toMatch(/four decimal numbers/);
    expect(input("http://010.8.8.8/")).toMatch(/four decimal numbers/); // 8.8.8.8 in octal
    expect(input("http://8.8.8.8./a.png")).toBeNull();
  });

  it("in development (allowLoopback) lets loopback through, nothing else", () => {
    expect(devInput("http://127.0.0.1:8788/a.png")).toBeNull();
    expect(devInput("http://localhost/a.png")).toBeNull();
    expect(devInput("http://10.0.0.1/a.png")).toBe(PRIVATE_HOST_MESSAGE);
    expect(devInput("http://169.254.169.254/")).toBe(PRIVATE_HOST_MESSAGE);
    expect(devInput("ftp://localhost/a.png")).toBe("must be an http(s) URL");
  });
});

describe("webhookUrlProblem uses the same rules, https only", () => {
  it("refuses every non-public host that inputs refuse", () => {
    for (const url of NOT_PUBLIC) {
      const https = url.replace(/^http:/, "https:");
      expect(webhookUrlProblem(https, false), https).toBe(PRIVATE_HOST_MESSAGE);
    }
    for (const url of PUBLIC.filter((u) => u.startsWith("https:"))) {
      expect(webhookUrlProblem(url, false), url).toBeNull();
    }
    expect(webhookUrlProblem("http://example.com/hook", false)).toBe("must use https");
  });
});

describe("image inputs (generations.schemas)", () => {
  it("image_urls, mask_url and end_url: public URLs or bounded data URIs", () => {
    expect(imageRefProblem("https://example.com/a.png")).toBeNull();
    expect(imageRefProblem("data:image/png;base64,iVBORw0KGgo=")).toBeNull();
    expect(imageRefProblem(`data:image/png;base64,${"A".repeat(17 * 1024 * 1024)}`)).toMatch(/12 MiB/);
    expect(imageRefProblem("data:image/png,abc")).toMatch(/data URI/);
    expect(imageRefProblem("ftp://example.com/a.png")).toMatch(/http\(s\) URL/);
    expect(imageRefProblem("http://169.254.169.254/")).toBe(PRIVATE_HOST_MESSAGE);
    expect(imageRefProblem("http://user:pw@example.com/a.png")).toMatch(/credentials/);
  });

  it("cref/sref/dref: every URL-looking token is checked, codes pass", () => {
    for (const value of [
      "123456",
      "123456 987654",
      "random",
      "https://example.com/a.png",
      "https://example.com/a.png::2 https://example.com/b.png::0.5 4242",
      "  1234   https://example.com/a.png  ",
      "1234::-0.5",
    ]) {
      expect(imageRefsProblem(value), value).toBeNull();
    }
    expect(imageRefsProblem("1234 http://127.0.0.1/a.png")).toMatch(
      /'http:\/\/127\.0\.0\.1\/a\.png'.*private/,
    );
    expect(imageRefsProblem("https://example.com/a.png http://10.0.0.1/b.png::2")).toMatch(/private/);
    expect(imageRefsProblem("http://metadata.google.internal/x")).toMatch(/private/);
    expect(imageRefsProblem("ftp://example.com/a.png")).toMatch(/http\(s\) URL/);
    expect(imageRefsProblem("example.com/a.png")).toMatch(/style code or an http\(s\) URL/);
    expect(imageRefsProblem("127.0.0.1")).toMatch(/style code or an http\(s\) URL/);
    expect(imageRefsProblem("https://u:p@example.com/a.png")).toMatch(/credentials/);
  });
});

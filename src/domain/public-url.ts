/**
 * Is this URL safe for someone to fetch on a tenant's behalf? One pure check, shared by
 * webhook endpoints (the gateway fetches them) and image inputs (the upstream fetches
 * them): a public http(s) host, no credentials, nothing another URL parser could read as
 * a different host.
 *
 * Refused hosts: loopback (127/8, ::1, localhost, *.localhost), private (10/8, 172.16/12,
 * 192.168/16, fc00::/7), link-local (169.254/16 with the metadata address, fe80::/10),
 * carrier-grade NAT (100.64/10), 0/8, 192.0.0/24, 198.18/15, multicast and reserved
 * (224/4, 240/4 with the broadcast address, ff00::/8, anything outside 2000::/3), IPv6
 * forms that embed one of those (::ffff:a.b.c.d, 64:ff9b::/96, 2002::/16), names without a
 * dot and internal suffixes (.local, .internal as in metadata.google.internal,
 * .localdomain, .home.arpa). IPv4 must be written as four decimal numbers: "2130706433",
 * "0x7f.1" or "0177.0.0.1" are refused (the first two are 127.0.0.1 to us, and a parser
 * that reads "0177" as decimal would disagree about the third).
 *
 * Names that resolve to private addresses cannot be checked here (no DNS from a pure
 * function); Cloudflare's egress does not reach private networks.
 */

export interface PublicUrlRules {
  /** Accepted schemes, e.g. ["https:"] for webhooks, ["http:", "https:"] for image inputs. */
  schemes: readonly ("http:" | "https:")[];
  /** Local development only: loopback hosts pass (over http or https). */
  allowLoopback: boolean;
}

export const PRIVATE_HOST_MESSAGE = "must not point at a private, loopback or link-local address";

type HostClass = "public" | "loopback" | "private";

/** null when the URL is fine, else why not (a message to put after the field's name). */
export function publicUrlProblem(raw: string, rules: PublicUrlRules): string | null {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return "must be an absolute URL";
  }
  const host = canonicalHost(url.hostname);
  const hostClass = classifyHost(host);
  const httpish = url.protocol === "http:" || url.protocol === "https:";
  const schemeOk = (rules.schemes as readonly string[]).includes(url.protocol);
  if (!(schemeOk || (hostClass === "loopback" && rules.allowLoopback && httpish))) {
    return rules.schemes.length === 1
      ? `must use ${rules.schemes[0]!.slice(0, -1)}`
      : "must be an http(s) URL";
  }
  // WHATWG parsers drop tabs and newlines and turn "\" into "/"; others do not. Refusing
  // them keeps every parser on the same host.
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what this refuses
  if (/[\u0000-\u0020\u007f\\]/.test(raw)) {
    return "must not contain spaces, backslashes or control characters";
  }
  const authority = rawAuthority(raw);
  if (url.username || url.password || authority.includes("@")) return "must not contain credentials";
  if (hostClass === "loopback" && rules.allowLoopback) return null;
  if (hostClass !== "public") return PRIVATE_HOST_MESSAGE;
  if (authority.includes("%")) return "must not percent-encode the host";
  if (parseIpv4(host) && rawHost(authority) !== host) {
    return "must write an IPv4 address as four decimal numbers (a.b.c.d)";
  }
  return null;
}

/** Lower case, no brackets, no trailing dot ("localhost." is localhost). */
function canonicalHost(hostname: string): string {
  return hostname
    .toLowerCase()
    .replace(/^\[|\]$/g, "")
    .replace(/\.+$/, "");
}

/** What the string itself says between "scheme://" and the path, query or fragment. */
function rawAuthority(raw: string): string {
  const match = /^[a-z][a-z0-9+.-]*:\/*([^/?#]*)/i.exec(raw.trim());
  return match?.[1] ?? "";
}

function rawHost(authority: string): string {
  const withoutUser = authority.slice(authority.lastIndexOf("@") + 1);
  return canonicalHost(withoutUser.replace(/:\d*$/, ""));
}

const INTERNAL_SUFFIXES = [".local", ".internal", ".localdomain", ".home.arpa"];

function classifyHost(host: string): HostClass {
  if (host === "localhost" || host.endsWith(".localhost")) return "loopback";
  const v4 = parseIpv4(host);
  if (v4) return classifyIpv4(v4);
  if (host.includes(":")) {
    const v6 = parseIpv6(host);
    return v6 ? classifyIpv6(v6) : "private";
  }
  if (!host.includes(".")) return "private";
  if (INTERNAL_SUFFIXES.some((suffix) => host.endsWith(suffix))) return "private";
  return "public";
}

/** Dotted-quad decimal only (what a WHATWG URL's hostname holds for any IPv4 spelling). */
function parseIpv4(host: string): number[] | null {
  const match = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(host);
  if (!match) return null;
  const parts = match.slice(1).map(Number);
  return parts.every((p) => p <= 255) ? parts : null;
}

function classifyIpv4([a, b, c]: number[]): HostClass {
  if (a === 127) return "loopback";
  if (
    a === 0 ||
    a === 10 ||
    (a === 100 && b! >= 64 && b! <= 127) || // carrier-grade NAT
    (a === 169 && b === 254) || // link-local, with the cloud metadata address
    (a === 172 && b! >= 16 && b! <= 31) ||
    (a === 192 && b === 168) ||
    (a === 192 && b === 0 && c === 0) || // IETF protocol assignments
    (a === 198 && (b === 18 || b === 19)) || // benchmarking
    a! >= 224 // multicast, reserved, broadcast
  ) {
    return "private";
  }
  return "public";
}

/** Eight 16-bit groups, or null. Accepts "::" compression and a trailing dotted quad. */
function parseIpv6(host: string): number[] | null {
  let text = host;
  const tail: number[] = [];
  const dotted = /^(.*:)(\d{1,3}(?:\.\d{1,3}){3})$/.exec(text);
  if (dotted) {
    const v4 = parseIpv4(dotted[2]!);
    if (!v4) return null;
    tail.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!);
    text = dotted[1]!.endsWith("::") ? dotted[1]! : dotted[1]!.slice(0, -1);
  }
  const halves = text.split("::");
  if (halves.length > 2) return null;
  const groups = (part: string) => (part === "" ? [] : part.split(":"));
  const head = groups(halves[0]!);
  const rest = halves.length === 2 ? groups(halves[1]!) : [];
  const all = [...head, ...rest];
  if (!all.every((g) => /^[0-9a-f]{1,4}$/.test(g))) return null;
  const missing = 8 - tail.length - all.length;
  if (halves.length === 2 ? missing < 1 : missing !== 0) return null;
  return [
    ...head.map((g) => Number.parseInt(g, 16)),
    ...Array<number>(halves.length === 2 ? missing : 0).fill(0),
    ...rest.map((g) => Number.parseInt(g, 16)),
    ...tail,
  ];
}

function embeddedIpv4(high: number, low: number): number[] {
  return [high >> 8, high & 0xff, low >> 8, low & 0xff];
}

function classifyIpv6(g: number[]): HostClass {
  const zeros = (from: number, to: number) => g.slice(from, to).every((x) => x === 0);
  if (zeros(0, 7) && g[7] === 1) return "loopback";
  if (zeros(0, 5) && g[5] === 0xffff) return classifyIpv4(embeddedIpv4(g[6]!, g[7]!)); // ::ffff:a.b.c.d
  if (zeros(0, 6)) return "private"; // :: and the deprecated ::a.b.c.d
  if (g[0] === 0x64 && g[1] === 0xff9b && zeros(2, 6)) return classifyIpv4(embeddedIpv4(g[6]!, g[7]!)); // NAT64
  if (g[0] === 0x2002) return classifyIpv4(embeddedIpv4(g[1]!, g[2]!)); // 6to4
  if (g[0] === 0x2001 && g[1] === 0) return "private"; // Teredo: an obfuscated IPv4 inside
  // Global unicast is 2000::/3; the rest is unique-local (fc00::/7), link-local (fe80::/10),
  // multicast (ff00::/8) or reserved.
  if ((g[0]! & 0xe000) !== 0x2000) return "private";
  return "public";
}

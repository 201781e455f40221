// Which addresses a token exchange may connect to: public unicast only (reference-policy §3.6, order 11).
import { isIP } from "node:net";

type Range = [number[], number];

/** Non-public IPv4 ranges: this network, private, loopback, CGNAT, link-local, multicast and above, and test/benchmark nets. */
const V4_BLOCKED: Range[] = [
  [[0, 0, 0, 0], 8],
  [[10, 0, 0, 0], 8],
  [[100, 64, 0, 0], 10],
  [[127, 0, 0, 0], 8],
  [[169, 254, 0, 0], 16],
  [[172, 16, 0, 0], 12],
  [[192, 0, 0, 0], 24],
  [[192, 0, 2, 0], 24],
  [[192, 168, 0, 0], 16],
  [[198, 18, 0, 0], 15],
  [[198, 51, 100, 0], 24],
  [[203, 0, 113, 0], 24],
  [[224, 0, 0, 0], 3],
];
const V4_LOOPBACK: Range = [[127, 0, 0, 0], 8];

/** Non-public IPv6 ranges (hextets): unique local, link-local, site-local, multicast, documentation, discard. */
const V6_BLOCKED: Range[] = [
  [[0xfc00], 7],
  [[0xfe80], 10],
  [[0xfec0], 10],
  [[0xff00], 8],
  [[0x2001, 0x0db8], 32],
  [[0x0100, 0, 0, 0], 64],
];

function inRange(parts: number[], [prefix, bits]: Range, width: number): boolean {
  for (let i = 0, left = bits; left > 0; i++, left -= width) {
    const take = Math.min(width, left);
    const mask = ((1 << take) - 1) << (width - take);
    if (((parts[i] ?? 0) & mask) !== ((prefix[i] ?? 0) & mask)) return false;
  }
  return true;
}

const v4Parts = (address: string): number[] => address.split(".").map(Number);

/** Eight hextets of an IPv6 address (a trailing dotted IPv4 and a zone id allowed). */
function v6Parts(address: string): number[] {
  let a = address.split("%")[0]!;
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(a);
  if (dotted) {
    const [b0, b1, b2, b3] = v4Parts(dotted[1]!);
    a = a.slice(0, -dotted[1]!.length) + `${((b0! << 8) | b1!).toString(16)}:${((b2! << 8) | b3!).toString(16)}`;
  }
  const [head, tail] = a.includes("::") ? a.split("::") : [a, undefined];
  const h = head ? head.split(":") : [];
  const t = tail ? tail.split(":") : [];
  const fill = tail === undefined ? [] : Array(8 - h.length - t.length).fill("0");
  return [...h, ...fill, ...t].map((x) => parseInt(x || "0", 16));
}

function v4Allowed(parts: number[], allowLoopback: boolean): boolean {
  if (allowLoopback && inRange(parts, V4_LOOPBACK, 8)) return true;
  return !V4_BLOCKED.some((r) => inRange(parts, r, 8));
}

/**
 * Whether a token exchange may connect to `address` (an IP literal). Loopback (127/8, ::1) only when
 * `allowLoopback` (a test-only setting). IPv4-mapped (::ffff:a.b.c.d) and NAT64 (64:ff9b::/96) forms are
 * judged by the IPv4 address inside; the rest of ::/96 (::, ::1, IPv4-compatible) is refused.
 */
export function isAllowedAddress(address: string, allowLoopback = false): boolean {
  const family = isIP(address.split("%")[0]!);
  if (family === 4) return v4Allowed(v4Parts(address), allowLoopback);
  if (family !== 6) return false;
  const p = v6Parts(address);
  const embedded = [p[6]! >> 8, p[6]! & 0xff, p[7]! >> 8, p[7]! & 0xff];
  if (p.slice(0, 5).every((x) => x === 0) && p[5] === 0xffff) return v4Allowed(embedded, allowLoopback);
  if (p[0] === 0x64 && p[1] === 0xff9b && p.slice(2, 6).every((x) => x === 0)) return v4Allowed(embedded, allowLoopback);
  if (p.slice(0, 6).every((x) => x === 0)) return allowLoopback && p[6] === 0 && p[7] === 1;
  if (p[0] === 0x64 && p[1] === 0xff9b && p[2] === 1) return false;
  return !V6_BLOCKED.some((r) => inRange(p, r, 16));
}

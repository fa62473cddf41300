/**
 * IPv4 address ranges, for checking at synth time (offline) that a database's range is one the
 * VPC can reach: inside the VPC, or inside a range the configuration says is routed to it.
 */

/** An IPv4 range as the numbers of its first and last address. */
interface Ipv4Range {
  readonly first: number;
  readonly last: number;
}

const CIDR = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/;

/** The range of `cidr` (`10.20.0.0/16`), or undefined when it is not an IPv4 CIDR block. */
export function parseIpv4Cidr(cidr: string): Ipv4Range | undefined {
  const match = CIDR.exec(cidr);
  if (!match) return undefined;
  const octets = match.slice(1, 5).map(Number);
  const prefix = Number(match[5]);
  if (octets.some((o) => o > 255) || prefix > 32) return undefined;
  const address = octets.reduce((acc, o) => acc * 256 + o, 0);
  const size = 2 ** (32 - prefix);
  const first = Math.floor(address / size) * size;
  return { first, last: first + size - 1 };
}

/** Whether `cidr` is an IPv4 CIDR block. */
export function isIpv4Cidr(cidr: string): boolean {
  return parseIpv4Cidr(cidr) !== undefined;
}

/** Whether every address of `inner` is in `outer` (both IPv4 CIDR blocks). */
export function cidrContains(outer: string, inner: string): boolean {
  const o = parseIpv4Cidr(outer);
  const i = parseIpv4Cidr(inner);
  return o !== undefined && i !== undefined && o.first <= i.first && i.last <= o.last;
}

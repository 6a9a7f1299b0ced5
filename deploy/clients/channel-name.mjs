// The bridge's channel-name rule for clients: BRIDGE_CHANNEL template + table + cache key ->
// the channel to subscribe to. JavaScript twin of bridge/channel_name.h (read the rule there);
// tests/integration/channel-name.test.mjs pins both to the same vectors.
//
// An ES module for browsers and Node >= 18; no dependencies. Async because names longer than
// 200 characters are hashed with Web Crypto (crypto.subtle.digest('SHA-256', ...)), which
// browsers expose only in secure contexts (https:, localhost).
//
//   import { channelName } from './channel-name.mjs';
//   pusher.subscribe(await channelName('cache-{key}', 'posts', 'posts:1')); // cache-posts=3A1

const kMaxChannelNameLength = 200; // Soketi refuses longer channel names
const kHashMarker = '=h';
const kHashHexDigits = 16;
const kHashedPrefixLength = kMaxChannelNameLength - kHashMarker.length - kHashHexDigits; // 182
const kEquals = 0x3d;
const kUpperHex = '0123456789ABCDEF';
const kPlaceholders = /\{table\}|\{key\}/g;

const encoder = new TextEncoder();

/** A-Z a-z 0-9 _ - @ , . ; are copied; every other byte, '=' included, is escaped. */
function copiedUnescaped(b) {
  return (
    (b >= 0x61 && b <= 0x7a) || (b >= 0x41 && b <= 0x5a) || (b >= 0x30 && b <= 0x39) ||
    b === 0x5f || b === 0x2d || b === 0x40 || b === 0x2c || b === 0x2e || b === 0x3b
  );
}

/** Appends the UTF-8 bytes of `text` unchanged (a loop: a spread could overflow the stack). */
function appendLiteral(out, text) {
  for (const b of encoder.encode(text)) out.push(b);
}

/** Appends the UTF-8 bytes of `text`, each byte outside the copied set as "=XX". */
function appendEscaped(out, text) {
  for (const b of encoder.encode(text)) {
    if (copiedUnescaped(b)) {
      out.push(b);
    } else {
      out.push(kEquals, kUpperHex.charCodeAt(b >> 4), kUpperHex.charCodeAt(b & 0x0f));
    }
  }
}

/** Longest prefix of at most 182 bytes with no '=' in its last two positions. */
function hashedPrefixLength(name) {
  let cut = Math.min(kHashedPrefixLength, name.length);
  while (cut > 0) {
    if (name[cut - 1] === kEquals) cut -= 1;
    else if (cut >= 2 && name[cut - 2] === kEquals) cut -= 2;
    else break;
  }
  return cut;
}

async function subtleCrypto() {
  if (globalThis.crypto?.subtle) return globalThis.crypto.subtle;
  // Node 18 keeps Web Crypto off the global object (unless --experimental-global-webcrypto).
  if (globalThis.process?.versions?.node) {
    const { webcrypto } = await import(/* webpackIgnore: true */ /* @vite-ignore */ 'node:crypto');
    return webcrypto.subtle;
  }
  throw new Error('channelName: Web Crypto (crypto.subtle) is unavailable; use https: or localhost');
}

async function sha256HexPrefix(bytes, hexDigits) {
  const digest = new Uint8Array(await (await subtleCrypto()).digest('SHA-256', bytes));
  let hex = '';
  for (const b of digest) hex += b.toString(16).padStart(2, '0');
  return hex.slice(0, hexDigits);
}

/**
 * The channel the bridge publishes `cacheKey` of `table` on, for the BRIDGE_CHANNEL
 * `template`: the same bytes bridge::expand_channel() returns (for templates that pass the
 * bridge's config check, which keeps them ASCII). Never longer than 200 characters.
 * @param {string} template  e.g. "cache-{table}-{key}"
 * @param {string} table
 * @param {string} cacheKey
 * @returns {Promise<string>}
 */
export async function channelName(template, table, cacheKey) {
  const text = String(template);
  const name = []; // bytes, as the C++ side counts and hashes them
  let literalStart = 0;
  for (const match of text.matchAll(kPlaceholders)) {
    appendLiteral(name, text.slice(literalStart, match.index));
    appendEscaped(name, String(match[0] === '{table}' ? table : cacheKey));
    literalStart = match.index + match[0].length;
  }
  appendLiteral(name, text.slice(literalStart));

  const decoder = new TextDecoder();
  if (name.length <= kMaxChannelNameLength) return decoder.decode(new Uint8Array(name));
  const full = new Uint8Array(name);
  const prefix = decoder.decode(full.subarray(0, hashedPrefixLength(full)));
  return `${prefix}${kHashMarker}${await sha256HexPrefix(full, kHashHexDigits)}`;
}

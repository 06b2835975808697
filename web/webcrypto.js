// The WebCrypto part of the bridge (web/bridge.js re-exports all of it): Ed25519, ECDSA P-256,
// AES-256-GCM, HKDF, PBKDF2, X25519 and SHA-256 on crypto.subtle, for the Python backend
// ostracon.runtime.browser.webcrypto (its only caller). The conventions are bridge.js's:
// bytes cross as Uint8Array, every async function returns a Promise, and a failure rejects
// with an Error named "CryptoError" (the Python side maps the name). The Python backend checks
// argument shapes first; the checks here keep a direct caller from reaching WebCrypto with
// a wrong-sized key.

import { u8 } from "./records.js";

function newCryptoError(message, cause) {
  const e = new Error(message);
  e.name = "CryptoError";
  if (cause !== undefined) e.cause = cause;
  return e;
}

const subtle = () => {
  const s = globalThis.crypto && globalThis.crypto.subtle;
  if (!s) throw newCryptoError("WebCrypto (crypto.subtle) is not available");
  return s;
};

// PKCS#8 wrapping of a raw 32-byte Ed25519 seed (RFC 8410): WebCrypto does not import raw
// private keys, so the seed is prefixed with this fixed DER header.
const ED25519_PKCS8_PREFIX = new Uint8Array([
  0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
]);

function cryptoError(e, what) {
  if (e && e.name === "CryptoError") return e;
  return newCryptoError(`${what}: ${e && e.name ? e.name : "Error"}${e && e.message ? `: ${e.message}` : ""}`, e);
}

function hex(bytes) {
  let s = "";
  for (const b of bytes) s += b.toString(16).padStart(2, "0");
  return s;
}

// Imported keys are cached (importKey costs more than a signature). Bounded: an actor signs
// with one or two seeds, a space has one key; 64 covers many spaces without growing forever.
const KEY_CACHE_LIMIT = 64;
const keyCache = new Map();
async function cachedKey(kind, raw, make) {
  const k = `${kind}:${hex(raw)}`;
  let p = keyCache.get(k);
  if (p) {
    keyCache.delete(k);
    keyCache.set(k, p);
    return p;
  }
  p = make();
  keyCache.set(k, p);
  if (keyCache.size > KEY_CACHE_LIMIT) keyCache.delete(keyCache.keys().next().value);
  try {
    return await p;
  } catch (e) {
    keyCache.delete(k);
    throw e;
  }
}

// PKCS#8 DER of a 32-byte raw private key: the algorithm's fixed DER prefix, then the key.
function pkcs8(prefix, raw, what) {
  raw = u8(raw);
  if (raw.length !== 32) throw newCryptoError(`${what} must be 32 bytes, got ${raw.length}`);
  const der = new Uint8Array(prefix.length + 32);
  der.set(prefix, 0);
  der.set(raw, prefix.length);
  return der;
}

const seedPkcs8 = (seed) => pkcs8(ED25519_PKCS8_PREFIX, seed, "Ed25519 seed");

function b64urlDecode(s) {
  const b64 = s.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((s.length + 3) % 4);
  const bin = atob(b64);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

// The raw public key of an octet-key-pair private key (Ed25519, X25519): its JWK's `x`
// (RFC 8037), as WebCrypto exports no raw public key from a private one. `der()` gives the
// private key's PKCS#8; any failure is a CryptoError naming `what`.
async function okpPublicKey(what, der, name, usages) {
  try {
    const key = await subtle().importKey("pkcs8", der(), { name }, true, usages);
    return b64urlDecode((await subtle().exportKey("jwk", key)).x);
  } catch (e) {
    throw cryptoError(e, what);
  }
}

export async function ed25519PublicKey(seed) {
  return okpPublicKey("ed25519 public key", () => seedPkcs8(seed), "Ed25519", ["sign"]);
}

export async function ed25519Sign(seed, message) {
  try {
    const key = await cachedKey("ed-sign", u8(seed), () =>
      subtle().importKey("pkcs8", seedPkcs8(seed), { name: "Ed25519" }, false, ["sign"]));
    return new Uint8Array(await subtle().sign({ name: "Ed25519" }, key, u8(message)));
  } catch (e) {
    throw cryptoError(e, "ed25519 sign");
  }
}

// A signature check with a raw public key of `keySize` bytes (imported as `keyAlgorithm`,
// cached under `kind`) and a 64-byte signature. Never rejects: a malformed key or signature
// is simply "not valid".
async function verifyRaw(kind, keyAlgorithm, signAlgorithm, keySize, publicKey, message, signature) {
  try {
    publicKey = u8(publicKey);
    signature = u8(signature);
    if (publicKey.length !== keySize || signature.length !== 64) return false;
    const key = await cachedKey(kind, publicKey, () =>
      subtle().importKey("raw", publicKey, keyAlgorithm, false, ["verify"]));
    return await subtle().verify(signAlgorithm, key, signature, u8(message));
  } catch (_) {
    return false;
  }
}

export async function ed25519Verify(publicKey, message, signature) {
  return verifyRaw("ed-verify", { name: "Ed25519" }, { name: "Ed25519" }, 32, publicKey, message, signature);
}

// PKCS#8 of a P-256 private scalar d: an RFC 5915 ECPrivateKey without its optional public
// key (WebCrypto imports no raw private keys; Chromium's BoringSSL and Node's OpenSSL compute
// the public point on import, so the scalar multiplication stays in native, constant-time code).
const P256_PKCS8_PREFIX = new Uint8Array([
  0x30, 0x41, 0x02, 0x01, 0x00, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01,
  0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x04, 0x27, 0x30, 0x25, 0x02, 0x01,
  0x01, 0x04, 0x20,
]);
const ECDSA_P256 = { name: "ECDSA", namedCurve: "P-256" };
const ECDSA_SHA256 = { name: "ECDSA", hash: "SHA-256" };

const p256Pkcs8 = (d) => pkcs8(P256_PKCS8_PREFIX, d, "P-256 private key");

// The uncompressed public point 04 ‖ x ‖ y (65 bytes); Python compresses and checks it.
export async function p256PublicKey(d) {
  try {
    const key = await subtle().importKey("pkcs8", p256Pkcs8(d), ECDSA_P256, true, ["sign"]);
    const jwk = await subtle().exportKey("jwk", key);
    const out = new Uint8Array(65);
    out[0] = 4;
    out.set(b64urlDecode(jwk.x), 1);
    out.set(b64urlDecode(jwk.y), 33);
    return out;
  } catch (e) {
    throw cryptoError(e, "p256 public key");
  }
}

// r ‖ s (IEEE P1363, 64 bytes) over SHA-256(message); randomised. Python normalises to low-S.
export async function p256Sign(d, message) {
  try {
    const key = await cachedKey("p256-sign", u8(d), () =>
      subtle().importKey("pkcs8", p256Pkcs8(d), ECDSA_P256, false, ["sign"]));
    return new Uint8Array(await subtle().sign(ECDSA_SHA256, key, u8(message)));
  } catch (e) {
    throw cryptoError(e, "p256 sign");
  }
}

// `publicKey`: the uncompressed point (65 bytes). Never rejects: malformed input is "not valid".
export async function p256Verify(publicKey, message, signature) {
  return verifyRaw("p256-verify", ECDSA_P256, ECDSA_SHA256, 65, publicKey, message, signature);
}

function aesKey(key, usage) {
  key = u8(key);
  if (key.length !== 32) throw newCryptoError(`AES-256-GCM key must be 32 bytes, got ${key.length}`);
  return cachedKey(`aes-${usage}`, key, () =>
    subtle().importKey("raw", key, { name: "AES-GCM" }, false, [usage]));
}

function checkNonce(nonce) {
  nonce = u8(nonce);
  if (nonce.length !== 12) throw newCryptoError(`AES-GCM nonce must be 12 bytes, got ${nonce.length}`);
  return nonce;
}

// One AES-256-GCM operation, `usage` "encrypt" or "decrypt", with the full 128-bit tag.
async function aesGcm(usage, key, nonce, data, aad) {
  const k = await aesKey(key, usage);
  const params = { name: "AES-GCM", iv: checkNonce(nonce), additionalData: u8(aad), tagLength: 128 };
  return new Uint8Array(await subtle()[usage](params, k, u8(data)));
}

export async function aesGcmEncrypt(key, nonce, plaintext, aad) {
  try {
    return await aesGcm("encrypt", key, nonce, plaintext, aad);
  } catch (e) {
    throw cryptoError(e, "aes-gcm encrypt");
  }
}

export async function aesGcmDecrypt(key, nonce, ciphertext, aad) {
  try {
    return await aesGcm("decrypt", key, nonce, ciphertext, aad);
  } catch (e) {
    // OperationError = the tag did not verify (wrong key, tampered bytes, wrong AAD).
    throw cryptoError(e, "aes-gcm decrypt");
  }
}

// `length` bytes from a SHA-256 key derivation (`params`: HKDF or PBKDF2) of `secret`.
async function deriveSha256(params, secret, length) {
  const k = await subtle().importKey("raw", u8(secret), params.name, false, ["deriveBits"]);
  return new Uint8Array(await subtle().deriveBits({ ...params, hash: "SHA-256" }, k, length * 8));
}

export async function hkdfSha256(ikm, salt, info, length) {
  try {
    return await deriveSha256({ name: "HKDF", salt: u8(salt), info: u8(info) }, ikm, length);
  } catch (e) {
    throw cryptoError(e, "hkdf");
  }
}

export async function pbkdf2Sha256(password, salt, iterations, length) {
  try {
    return await deriveSha256({ name: "PBKDF2", salt: u8(salt), iterations }, password, length);
  } catch (e) {
    throw cryptoError(e, "pbkdf2");
  }
}

// X25519 (RFC 7748) wraps space keys to members. WebCrypto imports a raw private key only as
// PKCS#8: the fixed DER prefix for an X25519 key (OID 1.3.101.110) followed by the 32 bytes.
const X25519_PKCS8_PREFIX = new Uint8Array([0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x6e,
  0x04, 0x22, 0x04, 0x20]);

const x25519Pkcs8 = (priv) => pkcs8(X25519_PKCS8_PREFIX, priv, "X25519 private key");

export async function x25519PublicKey(priv) {
  return okpPublicKey("x25519 public key", () => x25519Pkcs8(priv), "X25519", ["deriveBits"]);
}

export async function x25519(priv, peerPublic) {
  try {
    const key = await subtle().importKey("pkcs8", x25519Pkcs8(priv), { name: "X25519" }, false, ["deriveBits"]);
    const peer = await subtle().importKey("raw", u8(peerPublic), { name: "X25519" }, false, []);
    return new Uint8Array(await subtle().deriveBits({ name: "X25519", public: peer }, key, 256));
  } catch (e) {
    // Also a low-order peer key: WebCrypto refuses an all-zero shared secret (RFC 7748 §6.1).
    throw cryptoError(e, "x25519");
  }
}

export async function sha256(data) {
  return new Uint8Array(await subtle().digest("SHA-256", u8(data)));
}

// getRandomValues fills at most 65,536 bytes per call (a WebCrypto limit).
const RANDOM_CHUNK = 65536;
export function randomBytes(n) {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i += RANDOM_CHUNK) globalThis.crypto.getRandomValues(out.subarray(i, Math.min(n, i + RANDOM_CHUNK)));
  return out;
}

// Secrets at rest: AES-256-GCM with a 12-byte nonce and the tag appended, bound to its owner by the AAD.
import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";

export interface Sealed {
  nonce: string;
  ciphertext: string;
}

export function seal(key: Buffer, plaintext: Buffer, aad: string): Sealed {
  const nonce = randomBytes(12);
  const cipher = createCipheriv("aes-256-gcm", key, nonce);
  cipher.setAAD(Buffer.from(aad));
  const body = Buffer.concat([cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]);
  return { nonce: nonce.toString("base64"), ciphertext: body.toString("base64") };
}

export function open(key: Buffer, sealed: Sealed, aad: string): Buffer {
  const body = Buffer.from(sealed.ciphertext, "base64");
  const decipher = createDecipheriv("aes-256-gcm", key, Buffer.from(sealed.nonce, "base64"));
  decipher.setAAD(Buffer.from(aad));
  decipher.setAuthTag(body.subarray(body.length - 16));
  return Buffer.concat([decipher.update(body.subarray(0, body.length - 16)), decipher.final()]);
}

import type https from "node:https";

/** A certificate (chain) and its private key, PEM: the server then speaks only TLS. */
export interface TlsMaterial {
  cert: string;
  key: string;
}

/**
 * TLS 1.2 and 1.3 only; for 1.2 only forward-secret AEAD suites (TLS 1.3's are all AEAD and keep
 * Node's defaults).
 */
const TLS12_CIPHERS = [
  "ECDHE-ECDSA-AES128-GCM-SHA256",
  "ECDHE-RSA-AES128-GCM-SHA256",
  "ECDHE-ECDSA-AES256-GCM-SHA384",
  "ECDHE-RSA-AES256-GCM-SHA384",
  "ECDHE-ECDSA-CHACHA20-POLY1305",
  "ECDHE-RSA-CHACHA20-POLY1305",
].join(":");

/** The TLS half of the server's options. */
export function tlsServerOptions(tls: TlsMaterial): https.ServerOptions {
  return {
    cert: tls.cert,
    key: tls.key,
    minVersion: "TLSv1.2",
    ciphers: `${TLS12_CIPHERS}:TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256`,
    honorCipherOrder: true,
  };
}

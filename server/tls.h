/*
 * tls.h — the certificate and key the HTTPS listener serves, reloadable
 * without dropping the listening socket or any connection.
 *
 * Design
 *   libmicrohttpd (0.9.75) loads MHD_OPTION_HTTPS_MEM_CERT/KEY once, into
 *   credentials it owns, with no way to replace them. Instead the listener
 *   is started with MHD_OPTION_HTTPS_CERT_CALLBACK: GnuTLS asks
 *   tls_retrieve_cert() for the certificate at every handshake, and it
 *   answers with the credentials loaded most recently. That callback gets
 *   only the GnuTLS session, so server/http.c binds each new connection's
 *   session to this struct (tls_session_bind(), from MHD's connection-start
 *   notification, which runs after MHD created the session and before the
 *   handshake).
 *
 *   tls_reload() (SIGHUP) reads both files again and, only if they parse
 *   and the key matches the certificate, makes them current: handshakes
 *   from then on get the new certificate; connections already established
 *   keep theirs. On failure the current certificate stays in service.
 *
 * Ownership and lifetimes
 *   Credentials handed to GnuTLS must outlive every session that got them,
 *   and GnuTLS does not say when that is; so every loaded generation is
 *   kept until tls_close() (after the listener stopped). A reload costs a
 *   few kilobytes; operators reload rarely (certificate renewals).
 *
 * Threads: loop thread only (handshakes run inside MHD_run on the loop,
 *   and SIGHUP is delivered there), so nothing is locked.
 */
#ifndef MAASD_TLS_H
#define MAASD_TLS_H

#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <stdbool.h>
#include <stdint.h>

#include "engine/err.h"

struct tls;

/* Load the PEM certificate (chain: leaf first) and private key. Fails with
 * a message naming the file when either cannot be read or parsed, or the
 * key does not belong to the certificate. */
bool tls_open(const char *cert_path, const char *key_path, struct tls **out, struct err *e);
bool tls_reload(struct tls *t, struct err *e);
void tls_close(struct tls *t);

/* The served certificate's expiry (unix seconds) and SHA-256 fingerprint
 * (64 hex characters). */
int64_t tls_not_after(const struct tls *t);
const char *tls_fingerprint(const struct tls *t);

/* server/http.c wiring. */
void tls_session_bind(struct tls *t, void *gnutls_session);
int tls_retrieve_cert(gnutls_session_t session, const gnutls_datum_t *req_ca_rdn, int nreqs,
                      const gnutls_pk_algorithm_t *pk_algos, int pk_algos_length,
                      gnutls_pcert_st **pcert, unsigned int *pcert_length,
                      gnutls_privkey_t *privkey);

#endif

/* tls.c — see tls.h. */
#include "server/tls.h"

#include <gnutls/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/config.h"

struct tls_cred {
    gnutls_pcert_st *pcerts;
    unsigned n_pcerts;
    gnutls_privkey_t key;
    int64_t not_after;
    char fingerprint[65];
    struct tls_cred *older;
};

struct tls {
    char cert_path[CONFIG_PATH_MAX];
    char key_path[CONFIG_PATH_MAX];
    struct tls_cred *current;   /* newest first; older generations chained */
};

static void cred_free(struct tls_cred *c)
{
    if (!c)
        return;
    for (unsigned i = 0; i < c->n_pcerts; i++)
        gnutls_pcert_deinit(&c->pcerts[i]);
    free(c->pcerts);
    if (c->key)
        gnutls_privkey_deinit(c->key);
    free(c);
}

static bool tls_fail(struct err *e, const char *param, const char *what, const char *path, int rc)
{
    return err_set_param(e, ERR_INVALID, param, "--%s: %s '%s': %s", param, what, path,
                         gnutls_strerror(rc));
}

static bool cred_load(const char *cert_path, const char *key_path, struct tls_cred **out,
                      struct err *e)
{
    gnutls_datum_t cert_pem = {0}, key_pem = {0};
    gnutls_x509_crt_t *crts = NULL;
    unsigned n_crts = 0;
    gnutls_certificate_credentials_t check = NULL;
    struct tls_cred *c = calloc(1, sizeof *c);
    bool ok = false;
    int rc;
    if (!c)
        return err_set(e, ERR_NOMEM, "out of memory");
    if ((rc = gnutls_load_file(cert_path, &cert_pem)) < 0) {
        tls_fail(e, "tls-cert", "cannot read", cert_path, rc);
        goto out;
    }
    if ((rc = gnutls_load_file(key_path, &key_pem)) < 0) {
        tls_fail(e, "tls-key", "cannot read", key_path, rc);
        goto out;
    }
    rc = gnutls_x509_crt_list_import2(&crts, &n_crts, &cert_pem, GNUTLS_X509_FMT_PEM, 0);
    if (rc < 0 || n_crts == 0) {
        tls_fail(e, "tls-cert", "no PEM certificate in", cert_path,
                 rc < 0 ? rc : GNUTLS_E_NO_CERTIFICATE_FOUND);
        goto out;
    }
    /* The key must belong to the leaf: GnuTLS checks that when both go
     * into one credentials structure. */
    if ((rc = gnutls_certificate_allocate_credentials(&check)) < 0 ||
        (rc = gnutls_certificate_set_x509_key_mem2(check, &cert_pem, &key_pem,
                                                   GNUTLS_X509_FMT_PEM, NULL, 0)) < 0) {
        tls_fail(e, "tls-key", "cannot use the key", key_path, rc);
        goto out;
    }
    c->pcerts = calloc(n_crts, sizeof *c->pcerts);
    if (!c->pcerts) {
        err_set(e, ERR_NOMEM, "out of memory");
        goto out;
    }
    for (unsigned i = 0; i < n_crts; i++) {
        if ((rc = gnutls_pcert_import_x509(&c->pcerts[i], crts[i], 0)) < 0) {
            tls_fail(e, "tls-cert", "cannot use the certificate", cert_path, rc);
            goto out;
        }
        c->n_pcerts++;
    }
    if ((rc = gnutls_privkey_init(&c->key)) < 0 ||
        (rc = gnutls_privkey_import_x509_raw(c->key, &key_pem, GNUTLS_X509_FMT_PEM, NULL, 0)) <
            0) {
        tls_fail(e, "tls-key", "cannot parse the private key", key_path, rc);
        goto out;
    }
    c->not_after = (int64_t)gnutls_x509_crt_get_expiration_time(crts[0]);
    unsigned char fp[32];
    size_t fp_len = sizeof fp;
    if (gnutls_x509_crt_get_fingerprint(crts[0], GNUTLS_DIG_SHA256, fp, &fp_len) == 0)
        for (size_t i = 0; i < fp_len && i < 32; i++)
            snprintf(c->fingerprint + 2 * i, 3, "%02x", fp[i]);
    ok = true;
out:
    if (check)
        gnutls_certificate_free_credentials(check);
    for (unsigned i = 0; i < n_crts; i++)
        gnutls_x509_crt_deinit(crts[i]);
    gnutls_free(crts);
    gnutls_free(cert_pem.data);
    if (key_pem.data) {
        /* The key is a secret: do not leave it in freed memory. */
        memset(key_pem.data, 0, key_pem.size);
        gnutls_free(key_pem.data);
    }
    if (ok)
        *out = c;
    else
        cred_free(c);
    return ok;
}

bool tls_open(const char *cert_path, const char *key_path, struct tls **out, struct err *e)
{
    if (!*cert_path || !*key_path)
        return err_set_param(e, ERR_INVALID, *cert_path ? "tls-key" : "tls-cert",
                             "--tls-cert and --tls-key go together: give both or neither");
    struct tls *t = calloc(1, sizeof *t);
    if (!t)
        return err_set(e, ERR_NOMEM, "out of memory");
    snprintf(t->cert_path, sizeof t->cert_path, "%s", cert_path);
    snprintf(t->key_path, sizeof t->key_path, "%s", key_path);
    if (!cred_load(cert_path, key_path, &t->current, e)) {
        free(t);
        return false;
    }
    *out = t;
    return true;
}

bool tls_reload(struct tls *t, struct err *e)
{
    struct tls_cred *c = NULL;
    if (!cred_load(t->cert_path, t->key_path, &c, e))
        return false;
    c->older = t->current;
    t->current = c;
    return true;
}

void tls_close(struct tls *t)
{
    if (!t)
        return;
    for (struct tls_cred *c = t->current, *next; c; c = next) {
        next = c->older;
        cred_free(c);
    }
    free(t);
}

int64_t tls_not_after(const struct tls *t) { return t->current->not_after; }
const char *tls_fingerprint(const struct tls *t) { return t->current->fingerprint; }

void tls_session_bind(struct tls *t, void *gnutls_session)
{
    gnutls_session_set_ptr((gnutls_session_t)gnutls_session, t);
}

int tls_retrieve_cert(gnutls_session_t session, const gnutls_datum_t *req_ca_rdn, int nreqs,
                      const gnutls_pk_algorithm_t *pk_algos, int pk_algos_length,
                      gnutls_pcert_st **pcert, unsigned int *pcert_length,
                      gnutls_privkey_t *privkey)
{
    (void)req_ca_rdn;
    (void)nreqs;
    (void)pk_algos;
    (void)pk_algos_length;
    struct tls *t = gnutls_session_get_ptr(session);
    if (!t || !t->current)
        return -1; /* an unbound session: fail the handshake rather than guess */
    *pcert = t->current->pcerts;
    *pcert_length = t->current->n_pcerts;
    *privkey = t->current->key;
    return 0;
}

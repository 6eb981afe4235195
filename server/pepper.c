/* pepper.c — see pepper.h. */
#include "server/pepper.h"

#include <errno.h>
#include <fcntl.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

bool pepper_path(const char *configured, const char *db_path, char *out, size_t size,
                 struct err *e)
{
    int n = configured && *configured ? snprintf(out, size, "%s", configured)
                                      : snprintf(out, size, "%s.pepper", db_path);
    if (n < 0 || (size_t)n >= size)
        return err_set_param(e, ERR_INVALID, "key-pepper-file", "--key-pepper-file: path too long");
    return true;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static bool load(const char *path, int fd, uint8_t out[APIKEY_PEPPER_LEN], struct err *e)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        return err_set_param(e, ERR_IO, "key-pepper-file", "pepper file '%s': %s", path,
                             strerror(errno));
    if (st.st_mode & 077)
        return err_set_param(e, ERR_INVALID, "key-pepper-file",
                             "pepper file '%s' is accessible to group or others; "
                             "run: chmod 600 '%s'", path, path);
    char buf[APIKEY_PEPPER_LEN * 2 + 8];
    ssize_t n = read(fd, buf, sizeof buf);
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
        n--;
    if (n != APIKEY_PEPPER_LEN * 2)
        return err_set_param(e, ERR_CORRUPT, "key-pepper-file",
                             "pepper file '%s' must hold 64 hexadecimal characters", path);
    for (int i = 0; i < APIKEY_PEPPER_LEN; i++) {
        int hi = hexval(buf[2 * i]), lo = hexval(buf[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return err_set_param(e, ERR_CORRUPT, "key-pepper-file",
                                 "pepper file '%s' must hold 64 hexadecimal characters", path);
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return true;
}

static bool create(const char *path, struct err *e)
{
    uint8_t raw[APIKEY_PEPPER_LEN];
    if (gnutls_rnd(GNUTLS_RND_KEY, raw, sizeof raw) != 0)
        return err_set(e, ERR_IO, "the random number generator failed");
    char text[APIKEY_PEPPER_LEN * 2 + 2];
    for (int i = 0; i < APIKEY_PEPPER_LEN; i++)
        snprintf(text + 2 * i, 3, "%02x", raw[i]);
    text[APIKEY_PEPPER_LEN * 2] = '\n';
    gnutls_memset(raw, 0, sizeof raw);

    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return err_set_param(e, ERR_IO, "key-pepper-file", "cannot create pepper file '%s': %s",
                             path, strerror(errno));
    size_t len = APIKEY_PEPPER_LEN * 2 + 1;
    bool ok = write(fd, text, len) == (ssize_t)len && fsync(fd) == 0;
    int saved = errno;
    close(fd);
    gnutls_memset(text, 0, sizeof text);
    /* link() refuses to replace: if another process won the race, its
     * pepper stands and we read it. */
    if (ok && link(tmp, path) != 0 && errno != EEXIST) {
        saved = errno;
        ok = false;
    }
    unlink(tmp);
    if (!ok)
        return err_set_param(e, ERR_IO, "key-pepper-file", "cannot write pepper file '%s': %s",
                             path, strerror(saved));
    return true;
}

bool pepper_open(const char *path, bool may_create, uint8_t out[APIKEY_PEPPER_LEN],
                 bool *created, struct err *e)
{
    *created = false;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT) {
        if (!may_create)
            return err_set_param(e, ERR_CORRUPT, "key-pepper-file",
                                 "pepper file '%s' is missing but the database holds API keys "
                                 "hashed with it: restore it from your backup (without it no "
                                 "key can be verified), or point --key-pepper-file at it",
                                 path);
        if (!create(path, e))
            return false;
        *created = true;
        fd = open(path, O_RDONLY | O_CLOEXEC);
    }
    if (fd < 0)
        return err_set_param(e, ERR_IO, "key-pepper-file", "cannot open pepper file '%s': %s",
                             path, strerror(errno));
    bool ok = load(path, fd, out, e);
    close(fd);
    return ok;
}

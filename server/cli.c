/* cli.c — see cli.h. */
#include "server/cli.h"

#include <stdio.h>
#include <stdlib.h>

int cli_fail(const struct err *e)
{
    fprintf(stderr, "maasd: %s\n", e->msg);
    return 1;
}

bool cli_db_path(const char *flag, char *out, size_t size, struct err *e)
{
    const char *p = flag ? flag : getenv("MAASD_DB");
    if (!p || !*p)
        p = "data/maasd.db";
    if ((size_t)snprintf(out, size, "%s", p) >= size)
        return err_set_param(e, ERR_INVALID, "db", "--db: path too long");
    return true;
}

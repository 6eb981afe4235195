/* cmd_audit.c — `maasd audit verify`: walk the audit log's hash chain.
 * Exit 0 and "audit log intact: N rows, last hash H" when every link holds;
 * exit 1 and the first broken row otherwise. Keep the printed last hash
 * elsewhere: comparing it later also detects rows cut from the end. */
#include <stdio.h>
#include <string.h>

#include "server/audit.h"
#include "server/cli.h"
#include "server/store.h"

int cmd_audit(int argc, char **argv)
{
    const char *sub = argc > 0 ? argv[0] : "";
    if (strcmp(sub, "verify") != 0) {
        fputs("usage: maasd audit verify [--db PATH]\n", strcmp(sub, "--help") == 0 ? stdout : stderr);
        return strcmp(sub, "--help") == 0 ? 0 : 2;
    }
    struct cli_parsed p;
    struct err e = {0};
    if (!cli_parse(argc - 1, argv + 1, "", &p, &e))
        return cli_fail(&e);
    sqlite3 *db = NULL;
    struct audit_verify_result r;
    bool ok = cli_store_open(&p, false, &db, &e) && audit_verify(db, &r, &e);
    ok = cli_store_finish(db, ok, &e);
    if (!ok)
        return cli_fail(&e);
    if (r.first_bad_seq) {
        err_set(&e, ERR_CORRUPT, "audit log broken at seq %lld: %s (%lld rows checked)",
                (long long)r.first_bad_seq, r.reason, (long long)r.rows);
        return cli_fail(&e);
    }
    printf("audit log intact: %lld rows, last hash %s\n", (long long)r.rows,
           r.rows ? r.last_hash : "(empty)");
    return 0;
}

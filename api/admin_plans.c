/* admin_plans.c — /admin/v1/plans: list (with every version), and create
 * a new version of a plan (server/plans.h: history is never rewritten). */
#include <stdlib.h>

#include "api/admin.h"
#include "server/daemon.h"
#include "server/plans.h"
#include "server/store.h"

static bool version_job(sqlite3 *db, struct admin_write *w, struct err *e)
{
    const char *name;
    if (!admin_field_str(w->body, "name", &name, e))
        return false;
    return plans_create_version(db, w->actor, w->id, name, w->body, w->now, &w->result, e);
}

void api_admin_plans_create_version(struct api_call *c)
{
    admin_write(c, version_job);
}

void api_admin_plans_list(struct api_call *c)
{
    struct err e = {0};
    cJSON *list = NULL;
    bool ok = plans_list(c->d->db_read, store_now_ms(), &list, &e);
    admin_answer(c, ok, NULL, list, &e);
}

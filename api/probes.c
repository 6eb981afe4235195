/* probes.c — liveness, readiness and build identity. None needs a key:
 * orchestrators call them. */
#include "api/api.h"
#include "server/daemon.h"
#include "server/version.h"

void api_healthz(struct api_call *c)
{
    /* Liveness: the loop is turning. Deliberately touches nothing else. */
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "status", "ok");
    api_respond_json(c->req, 200, o);
}

void api_readyz(struct api_call *c)
{
    struct daemon_ctx *d = c->d;
    const char *reason = NULL;
    if (d->shutting_down)
        reason = "shutting down";
    else if (!d->db_read)
        reason = "database not open";
    else if (!d->models_loaded)
        reason = "models still loading";
    else if (d->models.n_failed > 0)
        reason = "a registered model failed to load (see GET /admin/v1/models); load or unload it";
    else {
        /* A read of the header page: proves the file is still there. */
        sqlite3_stmt *st = NULL;
        int rc = sqlite3_prepare_v2(d->db_read, "SELECT 1 FROM schema_migrations LIMIT 1", -1,
                                    &st, NULL);
        if (rc == SQLITE_OK)
            rc = sqlite3_step(st);
        sqlite3_finalize(st);
        if (rc != SQLITE_ROW && rc != SQLITE_DONE)
            reason = "database not readable";
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "status", reason ? "unavailable" : "ready");
    if (reason)
        cJSON_AddStringToObject(o, "reason", reason);
    api_respond_json(c->req, reason ? 503 : 200, o);
}

void api_version(struct api_call *c)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "version", maasd_version);
    cJSON_AddStringToObject(o, "git_commit", maasd_git_commit);
    cJSON_AddStringToObject(o, "build_flags", maasd_build_flags);
    api_respond_json(c->req, 200, o);
}

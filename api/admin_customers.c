/* admin_customers.c — /admin/v1/customers: create, list, get, update
 * (server/customers.h has the rules). */
#include <stdlib.h>

#include "api/admin.h"
#include "server/customers.h"
#include "server/daemon.h"

static bool create_job(sqlite3 *db, struct admin_write *w, struct err *e)
{
    const char *name, *email;
    return admin_field_str(w->body, "name", &name, e) &&
           admin_field_str(w->body, "email", &email, e) &&
           customers_create(db, w->actor, name, email, w->now, &w->result, e);
}

void api_admin_customers_create(struct api_call *c)
{
    admin_write(c, create_job);
}

static bool update_job(sqlite3 *db, struct admin_write *w, struct err *e)
{
    struct customer_update u;
    return admin_field_str(w->body, "name", &u.name, e) &&
           admin_field_str(w->body, "email", &u.email, e) &&
           admin_field_str(w->body, "status", &u.status, e) &&
           customers_update(db, w->actor, w->id, &u, w->now, &w->result, e);
}

void api_admin_customers_update(struct api_call *c)
{
    admin_write(c, update_job);
}

void api_admin_customers_get(struct api_call *c)
{
    struct err e = {0};
    char *json = NULL;
    bool ok = customers_get(c->d->db_read, c->params[0], &json, &e);
    admin_answer(c, ok, json, NULL, &e);
}

void api_admin_customers_list(struct api_call *c)
{
    int limit;
    const char *after;
    if (!admin_page(c, &limit, &after))
        return;
    struct err e = {0};
    cJSON *list = NULL;
    bool ok = customers_list(c->d->db_read, limit, after, &list, &e);
    admin_answer(c, ok, NULL, list, &e);
}

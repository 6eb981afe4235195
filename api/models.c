/* models.c — GET /v1/models and GET /v1/models/{id}: what the caller may
 * call (its key's and plan's model lists), with maasd's extensions: the
 * context length and the chat template family. Aliases are listed as
 * models of their own, as OpenAI lists its aliases. */
#include <string.h>

#include "api/api.h"
#include "engine/chat_template.h"
#include "server/auth.h"
#include "server/daemon.h"
#include "server/models.h"

static cJSON *model_object(const char *name, const struct served_model *m)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", name);
    cJSON_AddStringToObject(o, "object", "model");
    cJSON_AddNumberToObject(o, "created", (double)m->created);
    cJSON_AddStringToObject(o, "owned_by", "maasd");
    if (strcmp(name, m->name) != 0)
        cJSON_AddStringToObject(o, "resolves_to", m->name);
    cJSON_AddNumberToObject(o, "context_length", m->n_ctx);
    cJSON_AddStringToObject(o, "chat_template", chat_family_name(chat_template_family(m->tmpl)));
    return o;
}

static bool allowed(const struct api_call *c, const char *name)
{
    struct err ignored;
    return auth_model_allowed(&c->principal, name, &ignored);
}

void api_models_list(struct api_call *c)
{
    struct models *ms = &c->d->models;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "object", "list");
    cJSON *data = cJSON_AddArrayToObject(o, "data");
    for (int i = 0; i < ms->n_aliases; i++)
        if (allowed(c, ms->aliases[i].alias))
            cJSON_AddItemToArray(data, model_object(ms->aliases[i].alias, ms->aliases[i].target));
    for (int i = 0; i < ms->n; i++)
        if (allowed(c, ms->items[i]->name))
            cJSON_AddItemToArray(data, model_object(ms->items[i]->name, ms->items[i]));
    api_respond_json(c->req, 200, o);
}

void api_models_get(struct api_call *c)
{
    const struct served_model *m = models_find(&c->d->models, c->params[0]);
    struct err e = {0};
    if (!m || !auth_model_allowed(&c->principal, c->params[0], &e)) {
        /* A model the caller may not use does not exist for it. */
        err_set_param(&e, ERR_NOT_FOUND, "model", "The model '%s' does not exist.", c->params[0]);
        api_respond_error(c->req, &e);
        return;
    }
    api_respond_json(c->req, 200, model_object(c->params[0], m));
}

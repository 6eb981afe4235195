/* models.c — GET /v1/models and GET /v1/models/{id}: what can be called, and
 * (maasd extensions) its context length and chat template family. */
#include "api/api.h"
#include "engine/chat_template.h"
#include "server/daemon.h"
#include "server/models.h"

static cJSON *model_object(const struct served_model *m)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", m->id);
    cJSON_AddStringToObject(o, "object", "model");
    cJSON_AddNumberToObject(o, "created", (double)m->created);
    cJSON_AddStringToObject(o, "owned_by", "maasd");
    cJSON_AddNumberToObject(o, "context_length", m->n_ctx);
    cJSON_AddStringToObject(o, "chat_template", chat_family_name(chat_template_family(m->tmpl)));
    return o;
}

void api_models_list(struct api_call *c)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "object", "list");
    cJSON *data = cJSON_AddArrayToObject(o, "data");
    for (int i = 0; i < c->d->models.n; i++)
        cJSON_AddItemToArray(data, model_object(&c->d->models.items[i]));
    api_respond_json(c->req, 200, o);
}

void api_models_get(struct api_call *c)
{
    const struct served_model *m = models_find(&c->d->models, c->params[0]);
    if (!m) {
        struct err e;
        err_set_param(&e, ERR_NOT_FOUND, "model", "The model '%s' does not exist.", c->params[0]);
        api_respond_error(c->req, &e);
        return;
    }
    api_respond_json(c->req, 200, model_object(m));
}

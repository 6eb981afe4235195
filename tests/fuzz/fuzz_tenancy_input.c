/* fuzz_tenancy_input.c — the text a stranger controls on the tenancy side:
 * the Authorization value's key, an Idempotency-Key, and the scope, model,
 * time, duration and money strings of admin bodies and CLI flags. Each
 * parser must accept or refuse, never crash or read out of bounds. */
#include <cJSON.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "server/apikey.h"
#include "server/caltime.h"
#include "server/idempotency.h"
#include "server/keys.h"
#include "server/money.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    struct err e;
    int64_t v;
    unsigned scopes;
    char *models = NULL;
    uint8_t hash[APIKEY_HASH_LEN], pepper[APIKEY_PEPPER_LEN] = {0};

    if (apikey_check_format(s, strlen(s), &e))
        apikey_hash(pepper, s, strlen(s), hash, &e);
    char display[APIKEY_DISPLAY_MAX];
    apikey_display(s, display);
    apikey_scopes_parse(s, &scopes, &e);
    keys_models_from_list(s, "models", &models, &e);
    free(models);
    caltime_parse(s, &v, &e);
    caltime_parse_duration(s, &v, &e);
    money_parse(s, &v, &e);
    uint8_t rh[IDEMPOTENCY_HASH_LEN];
    idempotency_request_hash("POST", s, s, size, rh);

    cJSON *j = cJSON_ParseWithLength((const char *)data, size);
    if (j) {
        if (apikey_scopes_from_json(j, &scopes, &e)) {
            char *text = apikey_scopes_json(scopes);
            free(text);
        }
        if (keys_models_from_json(j, "allowed_models", &models, &e))
            free(models);
        cJSON_Delete(j);
    }
    free(s);
    return 0;
}
